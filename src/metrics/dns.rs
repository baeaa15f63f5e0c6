//! DNS metrics: the resolver's [`QueryObserver`], counting queries by
//! record type and outcome, answers served from the cache, and the latency
//! of queries that went to a nameserver.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tollgate_dns::{LookupError, QueryEvent, QueryObserver, QueryType, Served};

use super::{Grid, Labels};

/// Bucket bounds, in seconds, of the network query latency: a nearby
/// resolver's cache answers in well under a millisecond, a remote
/// authority in tens of milliseconds; the top buckets are timeouts.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The `outcome` label of a query: `answer`, `nxdomain`, `nodata`,
/// `timeout`, `servfail`, `refused`, `other-rcode` (any other error
/// RCODE), `truncated` (even over TCP), `error` (network or format error).
pub fn outcome_label(result: Result<(), &LookupError>) -> &'static str {
    OUTCOMES[outcome_index(result)]
}

/// Every value of the `outcome` label, in the order of [`outcome_index`].
const OUTCOMES: [&str; 9] = [
    "answer",
    "nxdomain",
    "nodata",
    "timeout",
    "servfail",
    "refused",
    "other-rcode",
    "truncated",
    "error",
];

/// The index in [`OUTCOMES`] of a query's outcome.
fn outcome_index(result: Result<(), &LookupError>) -> usize {
    match result {
        Ok(()) => 0,
        Err(LookupError::NxDomain) => 1,
        Err(LookupError::NoData) => 2,
        Err(LookupError::Timeout) => 3,
        Err(LookupError::ServerFailure(rcode)) => match rcode.as_str() {
            "SERVFAIL" => 4,
            "REFUSED" => 5,
            _ => 6,
        },
        Err(LookupError::Truncated) => 7,
        Err(LookupError::Other(_)) => 8,
    }
}

/// The DNS counters, fed by the resolver.
#[derive(Debug)]
pub struct DnsMetrics {
    /// By record type (`QueryType as usize`) and outcome ([`OUTCOMES`]).
    queries: Grid<{ QueryType::ALL.len() }, { OUTCOMES.len() }>,
    /// By record type (`QueryType as usize`).
    cache_answers: [Counter; QueryType::ALL.len()],
    latency: Histogram,
}

impl DnsMetrics {
    /// Registers the DNS metrics in `registry`.
    pub(super) fn register(registry: &mut Registry) -> DnsMetrics {
        let queries = Family::<Labels<2>, Counter>::default();
        registry.register(
            "tollgate_dns_queries",
            "DNS queries by record type and outcome, answered from the cache or not",
            queries.clone(),
        );
        let cache_family = Family::<Labels<1>, Counter>::default();
        let mut cache_answers: [Counter; QueryType::ALL.len()] = Default::default();
        for t in QueryType::ALL {
            cache_answers[t as usize] = cache_family.get_or_create_owned(&[("type", t.as_str())]);
        }
        registry.register(
            "tollgate_dns_cache_answers",
            "DNS queries answered without asking a nameserver (the shared cache), by record type",
            cache_family,
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "tollgate_dns_query_duration_seconds",
            "Time of the DNS queries that went to a nameserver (retries and TCP included)",
            latency.clone(),
        );
        DnsMetrics {
            queries: Grid::new(queries),
            cache_answers,
            latency,
        }
    }
}

impl QueryObserver for DnsMetrics {
    fn query(&self, event: &QueryEvent<'_>) {
        let kind = event.query_type;
        let outcome = outcome_index(event.result);
        self.queries.inc(kind as usize, outcome, || {
            [("type", kind.as_str()), ("outcome", OUTCOMES[outcome])]
        });
        match event.served {
            Served::Cache => {
                if let Some(counter) = self.cache_answers.get(kind as usize) {
                    counter.inc();
                }
            }
            Served::Network(took) => self.latency.observe(took.as_secs_f64()),
        }
    }
}
