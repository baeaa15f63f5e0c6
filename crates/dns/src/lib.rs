//! DNS lookups as tollgate's checks need them.
//!
//! The SPF engine and the checks see only the [`Lookup`] trait: five record
//! types (A, AAAA, MX, TXT, PTR), and an error type, [`LookupError`], that
//! keeps "no records" (NXDOMAIN, or NOERROR with an empty answer: what
//! RFC 7208 §4.6.4 calls a void lookup) apart from temporary failure
//! (timeout, SERVFAIL, REFUSED), because the first is a fact about the
//! domain and the second is not.
//!
//! [`memory::Zone`] is an in-memory implementation for tests, benchmarks and
//! offline use. [`observe`] is the hook through which the real-DNS adapter
//! reports each query (type, outcome, cache or network, latency), for
//! metrics kept outside this crate.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[cfg(feature = "hickory")]
mod answers;
#[cfg(feature = "hickory")]
pub mod hickory;
pub mod memory;
mod name;
pub mod observe;
mod strings;
mod weight;

pub use name::{normalize_name, reverse_name};
pub use observe::{QueryEvent, QueryObserver, QueryType, Served};
pub use strings::{CharacterStrings, TextType, TxtStrings, split_character_strings};
pub use weight::{MAX_KEPT_BYTES, Weight};

#[cfg(feature = "hickory")]
pub use hickory::{HickoryLookup, ResolverError, ResolverOptions};

/// A mail exchanger from an MX answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mx {
    /// The preference; lower is preferred.
    pub preference: u16,
    /// The exchange host name, without a trailing dot.
    pub exchange: String,
}

/// Why a lookup produced no answer records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The name does not exist (RCODE 3, NXDOMAIN).
    #[error("domain does not exist")]
    NxDomain,
    /// The name exists but has no records of the asked type (NOERROR, empty answer).
    #[error("no records of that type")]
    NoData,
    /// No answer arrived in time from any nameserver.
    #[error("dns timeout")]
    Timeout,
    /// A nameserver answered with an error code other than NXDOMAIN
    /// (SERVFAIL, REFUSED, NOTIMP, FORMERR …); the name is the RCODE mnemonic.
    #[error("server answered {0}")]
    ServerFailure(String),
    /// The answer was truncated (TC) even over TCP, so the records could
    /// not be had: a server whose answer does not fit, or a broken one.
    #[error("dns answer truncated even over tcp")]
    Truncated,
    /// Anything else that stopped the lookup (network error, malformed answer).
    #[error("dns error: {0}")]
    Other(String),
}

impl LookupError {
    /// True for "no records": NXDOMAIN or an empty NOERROR answer. These are
    /// facts about the domain, and are the void lookups of RFC 7208 §4.6.4.
    pub fn is_void(&self) -> bool {
        matches!(self, LookupError::NxDomain | LookupError::NoData)
    }

    /// True for failures that may go away if the query is repeated later:
    /// everything that is not "no records".
    pub fn is_temporary(&self) -> bool {
        !self.is_void()
    }

    /// The failure in words for replies and reports ("DNS timeout",
    /// "DNS server answered SERVFAIL", "no such domain", …).
    pub fn summary(&self) -> String {
        match self {
            LookupError::NxDomain => "no such domain".to_owned(),
            LookupError::NoData => "no records".to_owned(),
            LookupError::Timeout => "DNS timeout".to_owned(),
            LookupError::ServerFailure(rcode) => format!("DNS server answered {rcode}"),
            LookupError::Truncated => "DNS answer truncated even over TCP".to_owned(),
            LookupError::Other(why) => format!("DNS error: {why}"),
        }
    }
}

/// The result of one lookup.
pub type LookupResult<T> = Result<T, LookupError>;

/// Asynchronous DNS lookups of the record types the checks use.
///
/// Names are given without a trailing dot (one is tolerated) and are
/// compared without regard to ASCII case. An implementation returns
/// `Err(NoData)` or `Err(NxDomain)` rather than an empty `Ok` vector: an
/// `Ok` answer always holds at least one record.
pub trait Lookup: Send + Sync {
    /// IPv4 addresses of `name` (CNAMEs followed).
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send;

    /// IPv6 addresses of `name` (CNAMEs followed).
    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send;

    /// Mail exchangers of `name`, in answer order.
    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send;

    /// TXT records of `name`, one string per record, the record's
    /// character-strings concatenated without separator (RFC 7208 §3.3).
    /// Bytes that are not UTF-8 are replaced with U+FFFD.
    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send;

    /// PTR names of `ip` (queried under in-addr.arpa or ip6.arpa), without
    /// trailing dots.
    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send;
}

/// `Lookup` for pointers to a `Lookup`: `&L` and `Arc<L>` forward every call.
macro_rules! forward_lookup {
    ($($ptr:ty),*) => {$(
        impl<L: Lookup + ?Sized> Lookup for $ptr {
            fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
                (**self).lookup_a(name)
            }
            fn lookup_aaaa(
                &self,
                name: &str,
            ) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
                (**self).lookup_aaaa(name)
            }
            fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
                (**self).lookup_mx(name)
            }
            fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
                (**self).lookup_txt(name)
            }
            fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
                (**self).lookup_ptr(ip)
            }
        }
    )*};
}

forward_lookup!(&L, std::sync::Arc<L>);
