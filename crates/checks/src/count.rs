//! A [`Lookup`] that counts the queries made through it, in a counter the
//! caller keeps: a stage cut short by the time budget still reports the
//! queries it made before the cut.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::time::{Instant, timeout_at};
use tollgate_dns::{Lookup, LookupResult, Mx};

/// Runs `check` over `lookup`, counted, until `deadline`: its finding, or
/// `None` when the deadline cut it short, and the queries it made either
/// way. Every stage that asks DNS runs through here.
pub(crate) async fn within<L: Lookup, T>(
    lookup: &L,
    deadline: Instant,
    check: impl AsyncFnOnce(&Counted<'_, L>) -> T,
) -> (Option<T>, u32) {
    let queries = AtomicU32::new(0);
    let counted = Counted::new(lookup, &queries);
    let found = timeout_at(deadline, check(&counted)).await.ok();
    (found, queries.load(Ordering::Relaxed))
}

/// `inner`, counting every query in `queries`.
#[derive(Debug)]
pub(crate) struct Counted<'a, L> {
    inner: &'a L,
    queries: &'a AtomicU32,
}

impl<'a, L> Counted<'a, L> {
    pub(crate) fn new(inner: &'a L, queries: &'a AtomicU32) -> Self {
        Counted { inner, queries }
    }

    fn count(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }
}

impl<L: Lookup> Lookup for Counted<'_, L> {
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
        self.count();
        self.inner.lookup_a(name)
    }

    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
        self.count();
        self.inner.lookup_aaaa(name)
    }

    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
        self.count();
        self.inner.lookup_mx(name)
    }

    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.count();
        self.inner.lookup_txt(name)
    }

    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.count();
        self.inner.lookup_ptr(ip)
    }
}
