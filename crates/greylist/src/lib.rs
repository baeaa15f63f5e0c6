//! tollgate's greylisting (RFC 6647), free of the milter protocol and of
//! YAML: the [`Triplet`] (client network, normalized envelope sender,
//! recipient), the [rules](Settings) that decide a retry, the [`Store`]
//! trait and its two stores, [`EmbeddedStore`] (an SQLite file) and
//! [`RedisStore`] (for several MX hosts behind one MX record), and
//! [`Greylist`], which asks a store and fails open when it cannot.
//!
//! Time comes from a [`Clock`] (milliseconds since the epoch), so tests
//! run on a [`ManualClock`] instead of sleeping.

mod clock;
mod embedded;
mod redis_store;
mod rules;
mod triplet;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipnet::IpNet;

pub use clock::{Clock, ManualClock, SystemClock};
pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;
pub use rules::{Decision, NetworkRecord, Settings, TripletRecord};
pub use triplet::{MAX_ADDRESS, Networks, Triplet, normalize_recipient, normalize_sender};

/// Why a store could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("cannot open {what}: {problem}")]
    Open {
        /// The file or URL.
        what: String,
        /// Why.
        problem: String,
    },
    /// The database failed.
    #[error("store error: {0}")]
    Backend(String),
    /// No answer within the time allowed.
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// The future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One entry of a store, for `tollgate greylist list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A triplet and its record.
    Triplet(Triplet, TripletRecord),
    /// A network and its record.
    Network(IpNet, NetworkRecord),
}

/// How many entries a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Triplets not yet passed.
    pub pending: u64,
    /// Triplets passed.
    pub passed: u64,
    /// Networks that passed at least once (or allowed by hand).
    pub networks: u64,
    /// Of these, networks that skip greylisting now.
    pub allowed_networks: u64,
}

/// Counts entries (networks that skip greylisting by `settings`).
pub(crate) fn count_entries(entries: &[Entry], settings: &Settings) -> Counts {
    let mut c = Counts::default();
    for e in entries {
        match e {
            Entry::Triplet(_, t) if t.passes > 0 => c.passed += 1,
            Entry::Triplet(..) => c.pending += 1,
            Entry::Network(_, n) => {
                c.networks += 1;
                if n.manual || (settings.auto_allow > 0 && n.passes >= settings.auto_allow) {
                    c.allowed_networks += 1;
                }
            }
        }
    }
    c
}

/// Where greylisting keeps what it saw. Every method takes `now`
/// (milliseconds since the epoch) so that the rules run on the caller's
/// clock; the store holds the [`Settings`] it was opened with.
pub trait Store: Send + Sync + fmt::Debug {
    /// The atomic check-and-set: decides the triplet by the rules and
    /// records what changed.
    fn check<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, Decision>;
    /// Every live entry (expired ones are left out).
    fn entries(&self, now: u64) -> StoreFuture<'_, Vec<Entry>>;
    /// How many live entries there are.
    fn counts(&self, now: u64) -> StoreFuture<'_, Counts>;
    /// Allows a network by hand (it skips greylisting until it expires).
    fn allow_network(&self, network: IpNet, now: u64) -> StoreFuture<'_, ()>;
    /// Marks a triplet passed by hand.
    fn allow_triplet<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, ()>;
    /// Forgets a network; whether it was there.
    fn forget_network(&self, network: IpNet) -> StoreFuture<'_, bool>;
    /// Forgets a triplet; whether it was there.
    fn forget_triplet<'a>(&'a self, triplet: &'a Triplet) -> StoreFuture<'a, bool>;
}

/// The most a store operation may take while serving: past it the message
/// is accepted (fail open).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often at most a store failure is logged as a warning.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Greylisting over a store: the milter's entry point.
#[derive(Clone)]
pub struct Greylist {
    store: Arc<dyn Store>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    warned: Arc<WarnLimit>,
}

impl fmt::Debug for Greylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greylist")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Greylist {
    /// Greylisting with `settings` over `store`, on `clock`.
    pub fn new(store: Arc<dyn Store>, settings: Settings, clock: Arc<dyn Clock>) -> Greylist {
        Greylist {
            store,
            settings,
            clock,
            warned: Arc::new(WarnLimit::default()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The triplet of a client, sender and recipient.
    pub fn triplet(&self, ip: IpAddr, sender: &str, recipient: &str) -> Triplet {
        Triplet::new(ip, sender, recipient, self.settings.networks)
    }

    /// Decides a triplet; store trouble (an error, or no answer within
    /// [`STORE_TIMEOUT`]) fails open: [`Checked::StoreTrouble`], with a
    /// warning logged at most once a minute.
    pub async fn check(&self, triplet: &Triplet) -> Checked {
        let now = self.clock.now();
        let result = match tokio::time::timeout(STORE_TIMEOUT, self.store.check(triplet, now)).await
        {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(STORE_TIMEOUT)),
        };
        match result {
            Ok(decision) => Checked::Decided(decision),
            Err(error) => {
                if let Some(suppressed) = self.warned.allow() {
                    tracing::warn!(
                        %error,
                        suppressed,
                        "greylist store trouble: accepting mail without greylisting (fail open)"
                    );
                }
                Checked::StoreTrouble
            }
        }
    }
}

/// What greylisting made of a triplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The store decided.
    Decided(Decision),
    /// The store could not be asked: the message is accepted (fail open).
    StoreTrouble,
}

impl Checked {
    /// Whether the message is accepted.
    pub fn passes(self) -> bool {
        match self {
            Checked::Decided(d) => d.passes(),
            Checked::StoreTrouble => true,
        }
    }

    /// The stable name, for logs and counters: a [`Decision`]'s, or
    /// `store-trouble`.
    pub fn as_str(self) -> &'static str {
        match self {
            Checked::Decided(d) => d.as_str(),
            Checked::StoreTrouble => "store-trouble",
        }
    }
}

/// Lets a warning through at most once per [`WARN_INTERVAL`], counting
/// the ones held back.
#[derive(Debug, Default)]
struct WarnLimit {
    /// When the last warning went out (ms since the first use), plus one;
    /// 0 for never.
    last: AtomicU64,
    suppressed: AtomicU64,
    start: std::sync::OnceLock<std::time::Instant>,
}

impl WarnLimit {
    /// `Some(held back since the last one)` when a warning may go out now.
    fn allow(&self) -> Option<u64> {
        let start = *self.start.get_or_init(std::time::Instant::now);
        let now = rules::millis(start.elapsed()) + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + rules::millis(WARN_INTERVAL) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_warnings_go_out_at_most_once_a_minute() {
        let limit = WarnLimit::default();
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 2);
    }
}
