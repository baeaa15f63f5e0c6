//! One connection's memory of DNS answers: a [`Lookup`] over the shared
//! resolver that asks each question at most once per connection, so one
//! answer serves every stage that needs it (the HELO A record serves
//! helo-dns and SPF `a`; the PTR answer serves fcrdns, `ptr` and `%{p}`;
//! the MX answer serves sender-domain and SPF `mx`), also when the shared
//! cache is off. A question asked again while the first is still in
//! flight waits for that answer instead of asking again.
//!
//! Bounded: at most [`MAX_ANSWERS`] questions are remembered, and only
//! answers of at most [`MAX_REMEMBERED_BYTES`]; past that, lookups go
//! straight to the resolver (whose cache still has them). A client that
//! makes its SPF records include hundreds of 64 KiB TXT answers cannot
//! make one connection hold megabytes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tollgate_dns::{Lookup, LookupResult, Mx, Weight};

use crate::Checker;

/// The most questions one connection remembers.
pub(crate) const MAX_ANSWERS: usize = 256;

/// The largest answer remembered: the size the resolver's answer map
/// keeps, so that what it keeps a connection may remember too.
pub(crate) const MAX_REMEMBERED_BYTES: usize = tollgate_dns::MAX_KEPT_BYTES;

/// Room made at once for the questions of a typical connection (PTR, the
/// names' addresses, the block lists, the HELO and sender records and
/// includes, MX): the map is not grown and rehashed three times over as
/// each connection asks them.
const TYPICAL_ANSWERS: usize = 16;

/// A remembered answer.
#[derive(Clone, Debug)]
enum Answer {
    A(LookupResult<Vec<Ipv4Addr>>),
    Aaaa(LookupResult<Vec<Ipv6Addr>>),
    Mx(LookupResult<Vec<Mx>>),
    Txt(LookupResult<Vec<String>>),
    Ptr(LookupResult<Vec<String>>),
}

impl Answer {
    /// Bytes of data in the answer, as the resolver's answer map counts them.
    fn weight(&self) -> usize {
        fn sum<T: Weight>(result: &LookupResult<Vec<T>>) -> usize {
            result
                .as_ref()
                .map_or(0, |v| v.iter().map(Weight::weight).sum())
        }
        match self {
            Answer::A(r) => sum(r),
            Answer::Aaaa(r) => sum(r),
            Answer::Mx(r) => sum(r),
            Answer::Txt(r) | Answer::Ptr(r) => sum(r),
        }
    }
}

/// The question: record type and name (lower case, no trailing dot).
type Key = (u8, String);

type Slot = Arc<OnceCell<Answer>>;

/// The answers of one connection, over the checker's resolver.
#[derive(Debug)]
pub(crate) struct Memo<L> {
    checker: Arc<Checker<L>>,
    answers: Mutex<HashMap<Key, Slot>>,
}

impl<L> Memo<L> {
    pub(crate) fn new(checker: Arc<Checker<L>>) -> Self {
        Memo {
            checker,
            answers: Mutex::new(HashMap::with_capacity(TYPICAL_ANSWERS)),
        }
    }

    /// The checker whose resolver this memo asks.
    pub(crate) fn checker(&self) -> &Arc<Checker<L>> {
        &self.checker
    }

    /// Forgets a question whose answer is too large to remember: those
    /// already waiting for it keep their copy of the slot.
    fn forget(&self, kind: u8, name: &str) {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.remove(&(kind, name));
    }

    /// The slot for a question, or `None` when the memo is full.
    fn slot(&self, kind: u8, name: &str) -> Option<Slot> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let full = answers.len() >= MAX_ANSWERS;
        match answers.entry((kind, name)) {
            Entry::Occupied(known) => Some(Arc::clone(known.get())),
            Entry::Vacant(_) if full => None,
            Entry::Vacant(new) => Some(Arc::clone(new.insert(Slot::default()))),
        }
    }
}

/// Looks a question up once: `$kind` is the record type's number, `$variant`
/// the [`Answer`] variant, `$query` the resolver call.
macro_rules! remembered {
    ($self:ident, $kind:expr, $name:expr, $variant:ident, $query:expr) => {{
        let Some(slot) = $self.slot($kind, $name) else {
            return $query.await;
        };
        let answer = slot
            .get_or_init(|| async { Answer::$variant($query.await) })
            .await;
        if answer.weight() > MAX_REMEMBERED_BYTES {
            $self.forget($kind, $name);
        }
        match answer {
            Answer::$variant(result) => result.clone(),
            // A slot is only ever filled with its own variant.
            _ => $query.await,
        }
    }};
}

impl<L: Lookup> Lookup for Memo<L> {
    async fn lookup_a(&self, name: &str) -> LookupResult<Vec<Ipv4Addr>> {
        remembered!(self, 1, name, A, self.checker.lookup().lookup_a(name))
    }

    async fn lookup_aaaa(&self, name: &str) -> LookupResult<Vec<Ipv6Addr>> {
        remembered!(
            self,
            28,
            name,
            Aaaa,
            self.checker.lookup().lookup_aaaa(name)
        )
    }

    async fn lookup_mx(&self, name: &str) -> LookupResult<Vec<Mx>> {
        remembered!(self, 15, name, Mx, self.checker.lookup().lookup_mx(name))
    }

    async fn lookup_txt(&self, name: &str) -> LookupResult<Vec<String>> {
        remembered!(self, 16, name, Txt, self.checker.lookup().lookup_txt(name))
    }

    async fn lookup_ptr(&self, ip: IpAddr) -> LookupResult<Vec<String>> {
        let name = tollgate_dns::reverse_name(crate::canonical(ip));
        remembered!(self, 12, &name, Ptr, self.checker.lookup().lookup_ptr(ip))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tollgate_dns::memory::Zone;

    use super::*;
    use crate::Settings;

    /// A zone that counts the questions that reach it.
    #[derive(Debug)]
    struct Counting(Zone, AtomicU32);

    impl Lookup for Counting {
        async fn lookup_a(&self, name: &str) -> LookupResult<Vec<Ipv4Addr>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            self.0.lookup_a(name).await
        }
        async fn lookup_aaaa(&self, name: &str) -> LookupResult<Vec<Ipv6Addr>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.lookup_aaaa(name).await
        }
        async fn lookup_mx(&self, name: &str) -> LookupResult<Vec<Mx>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.lookup_mx(name).await
        }
        async fn lookup_txt(&self, name: &str) -> LookupResult<Vec<String>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.lookup_txt(name).await
        }
        async fn lookup_ptr(&self, ip: IpAddr) -> LookupResult<Vec<String>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.lookup_ptr(ip).await
        }
    }

    #[tokio::test]
    async fn one_question_is_asked_once_per_connection_even_concurrently() {
        let mut zone = Zone::new();
        zone.add(
            "mx.example.com",
            tollgate_dns::memory::RecordData::A("192.0.2.7".parse().unwrap()),
        );
        let checker = Arc::new(Checker::new(
            Counting(zone, AtomicU32::new(0)),
            Settings::default(),
        ));
        let memo = Memo::new(Arc::clone(&checker));
        let (a, b) = tokio::join!(
            memo.lookup_a("mx.example.com"),
            memo.lookup_a("MX.example.com.")
        );
        assert_eq!(a, b);
        assert!(memo.lookup_a("nowhere.example.com").await.is_err());
        assert!(memo.lookup_a("nowhere.example.com").await.is_err());
        assert_eq!(checker.lookup().1.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_full_memo_still_answers() {
        let checker = Arc::new(Checker::new(
            Counting(Zone::new(), AtomicU32::new(0)),
            Settings::default(),
        ));
        let memo = Memo::new(Arc::clone(&checker));
        for i in 0..MAX_ANSWERS + 10 {
            let _ = memo.lookup_txt(&format!("n{i}.example.com")).await;
        }
        let _ = memo.lookup_txt("n0.example.com").await;
        let _ = memo
            .lookup_txt(&format!("n{}.example.com", MAX_ANSWERS + 1))
            .await;
        // The first is remembered; the one past the bound is asked again.
        assert_eq!(
            checker.lookup().1.load(Ordering::Relaxed),
            MAX_ANSWERS as u32 + 10 + 1
        );
    }

    /// Regression guard for hostile zones: a 5 KiB TXT answer is not held
    /// for the rest of the connection (it is asked of the resolver again,
    /// whose cache has it), while a small one is remembered.
    #[tokio::test]
    async fn a_large_answer_is_not_remembered() {
        let mut zone = Zone::new();
        for i in 0..20 {
            zone.add_txt("big.example.com", &format!("{i:02}{}", "x".repeat(250)));
        }
        zone.add_txt("small.example.com", "v=spf1 -all");
        let checker = Arc::new(Checker::new(
            Counting(zone, AtomicU32::new(0)),
            Settings::default(),
        ));
        let memo = Memo::new(Arc::clone(&checker));
        for _ in 0..2 {
            assert_eq!(memo.lookup_txt("big.example.com").await.unwrap().len(), 20);
            assert_eq!(memo.lookup_txt("small.example.com").await.unwrap().len(), 1);
        }
        assert_eq!(checker.lookup().1.load(Ordering::Relaxed), 3);
    }
}
