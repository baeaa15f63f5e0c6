//! The resolver options of a validated `dns:` section: the one place that
//! turns the configuration into `tollgate_dns::ResolverOptions`, for the
//! milter and `tollgate check` alike.

use tollgate_dns::ResolverOptions;

use super::Dns;

impl From<&Dns> for ResolverOptions {
    fn from(dns: &Dns) -> Self {
        ResolverOptions {
            nameservers: dns.nameservers.clone(),
            timeout: dns.timeout,
            attempts: dns.attempts,
            cache_size: dns.cache_size,
        }
    }
}
