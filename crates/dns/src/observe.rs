//! A hook for watching lookups: what was asked, what came of it, and
//! whether a nameserver was asked or the answer was at hand. The adapter
//! over real DNS ([`crate::HickoryLookup`]) reports every query to a
//! [`QueryObserver`] given with
//! [`HickoryLookup::with_observer`](crate::HickoryLookup::with_observer);
//! what to do with the reports (tollgate counts them for Prometheus) is the
//! observer's business, so this crate stays free of any metrics library.

use std::fmt;
use std::time::Duration;

use crate::LookupError;

/// The record types the checks ask for: a bounded set, fit for a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryType {
    /// A (IPv4 addresses).
    A,
    /// AAAA (IPv6 addresses).
    Aaaa,
    /// MX (mail exchangers).
    Mx,
    /// TXT (SPF records, DNS list texts).
    Txt,
    /// PTR (reverse names).
    Ptr,
    /// SPF (type 99, asked only by `tollgate lint`).
    Spf,
}

impl QueryType {
    /// Every type.
    pub const ALL: [QueryType; 6] = [
        QueryType::A,
        QueryType::Aaaa,
        QueryType::Mx,
        QueryType::Txt,
        QueryType::Ptr,
        QueryType::Spf,
    ];

    /// The type's mnemonic: `A`, `AAAA`, `MX`, `TXT`, `PTR`, `SPF`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::A => "A",
            QueryType::Aaaa => "AAAA",
            QueryType::Mx => "MX",
            QueryType::Txt => "TXT",
            QueryType::Ptr => "PTR",
            QueryType::Spf => "SPF",
        }
    }
}

impl fmt::Display for QueryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Without waiting: the shared cache (positive or negative answer), or
    /// a name the resolver answers itself (RFC 6761 special-use names).
    Cache,
    /// From a nameserver, after this long (every attempt and the TCP retry
    /// of a truncated answer included).
    Network(Duration),
}

/// One finished query.
#[derive(Clone, Copy, Debug)]
pub struct QueryEvent<'a> {
    /// The record type asked for.
    pub query_type: QueryType,
    /// The outcome: records, or why there were none.
    pub result: Result<(), &'a LookupError>,
    /// Where the answer came from.
    pub served: Served,
}

/// Receives a [`QueryEvent`] for every query. Called on the task that made
/// the query, so it must be quick and must not block.
pub trait QueryObserver: Send + Sync + fmt::Debug {
    /// One query finished.
    fn query(&self, event: &QueryEvent<'_>);
}
