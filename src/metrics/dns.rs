//! DNS metrics: the resolver's [`QueryObserver`], counting queries by
//! record type and outcome, answers served from the cache, and the latency
//! of queries that went to a nameserver.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tollgate_dns::{LookupError, QueryEvent, QueryObserver, QueryType, Served};

use super::Labels;

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
    match result {
        Ok(()) => "answer",
        Err(LookupError::NxDomain) => "nxdomain",
        Err(LookupError::NoData) => "nodata",
        Err(LookupError::Timeout) => "timeout",
        Err(LookupError::ServerFailure(rcode)) => match rcode.as_str() {
            "SERVFAIL" => "servfail",
            "REFUSED" => "refused",
            _ => "other-rcode",
        },
        Err(LookupError::Truncated) => "truncated",
        Err(LookupError::Other(_)) => "error",
    }
}

/// The DNS counters, fed by the resolver.
#[derive(Debug)]
pub struct DnsMetrics {
    queries: Family<Labels<2>, Counter>,
    cache_answers: Family<Labels<1>, Counter>,
    latency: Histogram,
}

impl DnsMetrics {
    /// Registers the DNS metrics in `registry`.
    pub(super) fn register(registry: &mut Registry) -> DnsMetrics {
        let queries = Family::default();
        registry.register(
            "tollgate_dns_queries",
            "DNS queries by record type and outcome, answered from the cache or not",
            queries.clone(),
        );
        let cache_answers = Family::<Labels<1>, Counter>::default();
        for t in QueryType::ALL {
            let _ = cache_answers.get_or_create(&[("type", t.as_str())]);
        }
        registry.register(
            "tollgate_dns_cache_answers",
            "DNS queries answered without asking a nameserver (the shared cache), by record type",
            cache_answers.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "tollgate_dns_query_duration_seconds",
            "Time of the DNS queries that went to a nameserver (retries and TCP included)",
            latency.clone(),
        );
        DnsMetrics {
            queries,
            cache_answers,
            latency,
        }
    }
}

impl QueryObserver for DnsMetrics {
    fn query(&self, event: &QueryEvent<'_>) {
        let kind = event.query_type.as_str();
        self.queries
            .get_or_create(&[("type", kind), ("outcome", outcome_label(event.result))])
            .inc();
        match event.served {
            Served::Cache => {
                self.cache_answers.get_or_create(&[("type", kind)]).inc();
            }
            Served::Network(took) => self.latency.observe(took.as_secs_f64()),
        }
    }
}
