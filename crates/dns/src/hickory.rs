//! [`Lookup`] over real DNS, with hickory-resolver: the only module of
//! tollgate that names hickory types.
//!
//! [`HickoryLookup`] is a stub resolver: it asks the configured nameservers
//! (those of `/etc/resolv.conf` by default) over UDP, and again over TCP when
//! an answer comes back truncated. Every clone shares one resolver and one
//! cache, which honours TTLs and keeps negative answers for the SOA's
//! negative TTL. Names are always absolute: no search domains, no `ndots`,
//! no hosts file.
//!
//! Outcomes map onto [`LookupError`] as the checks need them: NXDOMAIN and
//! an empty NOERROR answer are `NxDomain` and `NoData` (void lookups);
//! SERVFAIL, REFUSED and other response codes are `ServerFailure` with the
//! RCODE's mnemonic; no answer in time is `Timeout`.
//!
//! An answer that holds a record with no data at all (RDLENGTH 0, which a
//! TXT record may not have but real servers send) is refused as a whole by
//! hickory's message decoder. The transports of [`lenient`] repair such
//! an answer before hickory reads it: an empty TXT record becomes one
//! empty character-string, any other empty record is dropped, and the
//! answer's other records are used as sent.
//!
//! In front of hickory's cache sits a map of finished answers
//! ([`crate::answers`]): a warm lookup is one hash probe and a copy of the
//! addresses or strings, and expires when hickory says the answer does.
//!
//! Every query can be reported to a [`QueryObserver`]
//! ([`HickoryLookup::with_observer`]): its type, its outcome, and whether
//! it was answered at once (the cache) or by a nameserver, with how long
//! that took. A lookup whose future is ready at its first poll never
//! waited for a nameserver: hickory answers from its cache without
//! yielding, and a query sent over the network is answered by another task.
//!
//! Building a `HickoryLookup` needs no runtime, but hickory-resolver spawns
//! its connections on the tokio runtime that first uses them: use a
//! `HickoryLookup` (and its clones) from one runtime.

mod lenient;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};

use lenient::Lenient;

use crate::Weight;
use crate::answers::AnswerMap;
use crate::observe::{QueryEvent, QueryObserver, QueryType, Served};
use crate::{Lookup, LookupError, LookupResult, Mx, normalize_name, reverse_name};

/// How a [`HickoryLookup`] reaches DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverOptions {
    /// Nameservers (address and port), asked over UDP and, for truncated
    /// answers, TCP on the same port. `None`: those of `/etc/resolv.conf`.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// How long one attempt waits for an answer.
    pub timeout: Duration,
    /// How many times a query is sent before giving up (at least 1).
    pub attempts: usize,
    /// How many answers the shared cache holds.
    pub cache_size: usize,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        Self {
            nameservers: None,
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 4096,
        }
    }
}

/// Why a [`HickoryLookup`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// The system resolver configuration could not be read.
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
    /// There is no nameserver to ask.
    #[error("no nameservers configured")]
    NoNameservers,
    /// hickory-resolver refused the configuration.
    #[error("cannot build the resolver: {0}")]
    Build(String),
}

/// A [`Lookup`] that asks real nameservers through hickory-resolver.
/// Cheap to clone; clones share the resolver, its cache and the observer.
#[derive(Clone, Debug)]
pub struct HickoryLookup {
    resolver: Arc<Resolver<Lenient>>,
    answers: Arc<Answers>,
    observer: Option<Arc<dyn QueryObserver>>,
}

/// The finished answers of each record type the checks ask for, each map
/// as large as the resolver's cache.
#[derive(Debug)]
struct Answers {
    a: AnswerMap<Ipv4Addr>,
    aaaa: AnswerMap<Ipv6Addr>,
    mx: AnswerMap<Mx>,
    txt: AnswerMap<String>,
    ptr: AnswerMap<String>,
}

impl Answers {
    fn new(capacity: usize) -> Self {
        Self {
            a: AnswerMap::new(capacity),
            aaaa: AnswerMap::new(capacity),
            mx: AnswerMap::new(capacity),
            txt: AnswerMap::new(capacity),
            ptr: AnswerMap::new(capacity),
        }
    }
}

/// The most DNS messages hickory's own cache holds (see [`HickoryLookup::new`]).
const RESOLVER_CACHE_MAX: usize = 1024;

/// The longest a "no records" answer is kept, whatever the SOA says
/// (RFC 2308 §5: one to three hours work well).
const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(3 * 3600);

impl HickoryLookup {
    /// Builds a resolver from `options`.
    pub fn new(options: ResolverOptions) -> Result<Self, ResolverError> {
        let name_servers = match &options.nameservers {
            Some(addrs) => addrs
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect(),
            None => {
                let (system, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| ResolverError::SystemConfig(e.to_string()))?;
                // Only the nameservers: the search list and options are ignored.
                system.into_parts().2
            }
        };
        if name_servers.is_empty() {
            return Err(ResolverError::NoNameservers);
        }
        let config = ResolverConfig::from_name_servers(name_servers);

        let mut opts = ResolverOpts::default();
        opts.timeout = options.timeout;
        // hickory counts retries after the first try.
        opts.attempts = options.attempts.max(1) - 1;
        // The map of finished answers in front serves every repeated
        // question whose answer fits it; hickory's own cache is left the
        // rest (answers over `MAX_KEPT_BYTES`, CNAME chains' links), so it
        // needs far fewer entries, and each may be a 64 KiB message.
        opts.cache_size = options.cache_size.min(RESOLVER_CACHE_MAX) as u64;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;

        let resolver = Resolver::builder_with_config(config, Lenient::default())
            .with_options(opts)
            .build()
            .map_err(|e| ResolverError::Build(e.to_string()))?;
        Ok(Self {
            resolver: Arc::new(resolver),
            answers: Arc::new(Answers::new(options.cache_size)),
            observer: None,
        })
    }

    /// The same resolver (and cache), reporting every query to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn QueryObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        let answers = &self.answers;
        answers.a.clear();
        answers.aaaa.clear();
        answers.mx.clear();
        answers.txt.clear();
        answers.ptr.clear();
        self.resolver.clear_cache();
    }

    /// The records of type `rtype` answering `name` (CNAMEs followed), and
    /// until when the answer may be kept (`None`: not at all).
    async fn query(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> (LookupResult<Vec<RData>>, Option<Instant>) {
        // A name that cannot be encoded (an empty label, a label over 63
        // bytes, over 255 bytes in all) cannot exist.
        let Some(name) = absolute_name(name) else {
            return (Err(LookupError::NxDomain), None);
        };
        let Some(observer) = &self.observer else {
            return records(self.resolver.lookup(name, rtype).await, rtype);
        };
        let started = Instant::now();
        let mut waited = false;
        let mut lookup = pin!(self.resolver.lookup(name, rtype));
        let answer = std::future::poll_fn(|cx| {
            let poll = lookup.as_mut().poll(cx);
            waited |= poll.is_pending();
            poll
        })
        .await;
        let answer = records(answer, rtype);
        let served = if waited {
            Served::Network(started.elapsed())
        } else {
            Served::Cache
        };
        observe(observer.as_ref(), rtype, &answer.0, served);
        answer
    }

    /// The records of `name` picked from the answer: from the map of
    /// finished answers if it has them, else from the resolver, keeping
    /// what it answers for as long as it is valid.
    async fn resolve<T: Clone + Weight>(
        &self,
        name: &str,
        rtype: RecordType,
        map: &AnswerMap<T>,
        pick: impl Fn(RData) -> Option<T>,
    ) -> LookupResult<Vec<T>> {
        if let Some(answer) = map.get(name, Instant::now()) {
            if let Some(observer) = &self.observer {
                observe(observer.as_ref(), rtype, &answer, Served::Cache);
            }
            return answer;
        }
        let (answer, valid_until) = self.query(name, rtype).await;
        let answer = picked(answer, pick);
        if let Some(valid_until) = valid_until {
            map.put(name, &answer, valid_until, Instant::now());
        }
        answer
    }
}

/// The records picked out of `answer`; none picked is "no records".
fn picked<T>(
    answer: LookupResult<Vec<RData>>,
    pick: impl Fn(RData) -> Option<T>,
) -> LookupResult<Vec<T>> {
    let found: Vec<T> = answer?.into_iter().filter_map(pick).collect();
    if found.is_empty() {
        Err(LookupError::NoData)
    } else {
        Ok(found)
    }
}

/// Tells `observer` of one answered query.
fn observe<T>(
    observer: &dyn QueryObserver,
    rtype: RecordType,
    answer: &LookupResult<T>,
    served: Served,
) {
    observer.query(&QueryEvent {
        query_type: query_type(rtype),
        result: answer.as_ref().map(|_| ()),
        served,
    });
}

impl Lookup for HickoryLookup {
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
        self.resolve(name, RecordType::A, &self.answers.a, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
    }

    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
        self.resolve(name, RecordType::AAAA, &self.answers.aaaa, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
    }

    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
        self.resolve(name, RecordType::MX, &self.answers.mx, |d| match d {
            RData::MX(mx) => Some(Mx {
                preference: mx.preference,
                exchange: name_text(&mx.exchange),
            }),
            _ => None,
        })
    }

    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.resolve(name, RecordType::TXT, &self.answers.txt, |d| match d {
            RData::TXT(txt) => Some(txt_text(&txt)),
            _ => None,
        })
    }

    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        let name = reverse_name(ip);
        async move {
            self.resolve(&name, RecordType::PTR, &self.answers.ptr, |d| match d {
                RData::PTR(ptr) => Some(normalize_name(&name_text(&ptr.0))),
                _ => None,
            })
            .await
        }
    }
}

impl crate::TxtStrings for HickoryLookup {
    fn lookup_strings(
        &self,
        name: &str,
        rtype: crate::TextType,
    ) -> impl Future<Output = LookupResult<Vec<crate::CharacterStrings>>> + Send {
        // The lint asks each name once: its answers are not kept here.
        let wire_type = RecordType::from(rtype.code());
        async move {
            let (answer, _) = self.query(name, wire_type).await;
            picked(answer, |d| match d {
                RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
                // SPF (99) comes back undecoded: its RDATA has TXT's layout.
                RData::Unknown { rdata, .. } => crate::split_character_strings(&rdata.anything),
                _ => None,
            })
        }
    }
}

/// The records of type `rtype` in a lookup's answer, and until when the
/// answer may be kept: an answer until hickory says it expires (its
/// lowest TTL, what is left of it when it came from hickory's cache),
/// "no records" for the SOA's negative TTL (RFC 2308 §5), at most
/// [`NEGATIVE_TTL_MAX`], and a failure not at all.
fn records(
    answer: Result<hickory_resolver::lookup::Lookup, NetError>,
    rtype: RecordType,
) -> (LookupResult<Vec<RData>>, Option<Instant>) {
    let lookup = match answer {
        Ok(lookup) => lookup,
        Err(error) => {
            let valid_until = match &error {
                NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
                    no_records.negative_ttl.map(|ttl| {
                        Instant::now() + Duration::from_secs(ttl.into()).min(NEGATIVE_TTL_MAX)
                    })
                }
                _ => None,
            };
            return (Err(map_error(error)), valid_until);
        }
    };
    let records: Vec<RData> = lookup
        .answers()
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.data.clone())
        .collect();
    if records.is_empty() {
        // Only records of other types (a CNAME chain's): not kept, as
        // there is no TTL of the asked type to keep it by.
        (Err(LookupError::NoData), None)
    } else {
        (Ok(records), Some(lookup.valid_until()))
    }
}

/// The observer's name for a record type the checks ask for.
fn query_type(rtype: RecordType) -> QueryType {
    match rtype {
        RecordType::A => QueryType::A,
        RecordType::AAAA => QueryType::Aaaa,
        RecordType::MX => QueryType::Mx,
        RecordType::PTR => QueryType::Ptr,
        RecordType::TXT => QueryType::Txt,
        // Type 99, the only other type asked (`TxtStrings`).
        _ => QueryType::Spf,
    }
}

/// A TXT record's character-strings concatenated (RFC 7208 §3.3); bytes
/// that are not UTF-8 become U+FFFD. The bytes are joined first, so a UTF-8
/// sequence split across two strings survives.
fn txt_text(txt: &TXT) -> String {
    let bytes: Vec<u8> = txt
        .txt_data
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `name` as an absolute DNS name, label by label (no escapes, no IDNA).
fn absolute_name(name: &str) -> Option<Name> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some(Name::root());
    }
    Name::from_labels(name.split('.').map(str::as_bytes)).ok()
}

/// A name as text: labels joined with dots, no trailing dot (bytes that are
/// not UTF-8 replaced).
fn name_text(name: &Name) -> String {
    let labels: Vec<_> = name.iter().map(String::from_utf8_lossy).collect();
    labels.join(".")
}

fn map_error(error: NetError) -> LookupError {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            rcode_error(no_records.response_code)
        }
        NetError::Dns(DnsError::ResponseCode(code)) => rcode_error(code),
        NetError::Timeout => LookupError::Timeout,
        // TC set on the answer over TCP too: nothing more can be asked.
        NetError::Truncated => LookupError::Truncated,
        NetError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => LookupError::Timeout,
        other => {
            tracing::debug!(error = %other, "dns lookup failed");
            LookupError::Other(other.to_string())
        }
    }
}

fn rcode_error(code: ResponseCode) -> LookupError {
    match code {
        ResponseCode::NXDomain => LookupError::NxDomain,
        ResponseCode::NoError => LookupError::NoData,
        code => LookupError::ServerFailure(rcode_name(code)),
    }
}

/// The RCODE mnemonic (RFC 6895 §2.3).
fn rcode_name(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::BADSIG => "BADSIG",
        ResponseCode::BADKEY => "BADKEY",
        ResponseCode::BADTIME => "BADTIME",
        ResponseCode::BADMODE => "BADMODE",
        ResponseCode::BADNAME => "BADNAME",
        ResponseCode::BADALG => "BADALG",
        ResponseCode::BADTRUNC => "BADTRUNC",
        ResponseCode::BADCOOKIE => "BADCOOKIE",
        other => return format!("RCODE{}", u16::from(other)),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_absolute_label_by_label() {
        let name = absolute_name("Mail.Example.com").unwrap();
        assert!(name.is_fqdn());
        assert_eq!(name.to_ascii(), "Mail.Example.com.");
        assert!(absolute_name("example.com.").unwrap().is_fqdn());
        assert!(absolute_name("").unwrap().is_root());
        // Characters that zone-file syntax would treat as escapes stay literal.
        assert_eq!(
            name_text(&absolute_name("a\\b.example.com").unwrap()),
            "a\\b.example.com"
        );
    }

    #[test]
    fn impossible_names_are_rejected() {
        assert!(absolute_name(&format!("{}.example.com", "a".repeat(64))).is_none());
        assert!(absolute_name("a..example.com").is_none());
        assert!(absolute_name(&["abcdefghij"; 30].join(".")).is_none());
    }

    #[test]
    fn txt_strings_are_joined_before_decoding() {
        let split = "é".as_bytes();
        let txt = TXT::from_bytes(vec![b"v=spf1 ", &split[..1], &split[1..], b" \xff"]);
        assert_eq!(txt_text(&txt), "v=spf1 é \u{fffd}");
    }

    #[test]
    fn rcodes_map_to_lookup_errors() {
        assert_eq!(rcode_error(ResponseCode::NXDomain), LookupError::NxDomain);
        assert_eq!(rcode_error(ResponseCode::NoError), LookupError::NoData);
        assert_eq!(
            rcode_error(ResponseCode::ServFail),
            LookupError::ServerFailure("SERVFAIL".into())
        );
        assert_eq!(
            rcode_error(ResponseCode::Refused),
            LookupError::ServerFailure("REFUSED".into())
        );
        assert_eq!(
            rcode_error(ResponseCode::Unknown(3000)),
            LookupError::ServerFailure("RCODE3000".into())
        );
        assert_eq!(map_error(NetError::Timeout), LookupError::Timeout);
    }

    #[test]
    fn building_needs_no_runtime() {
        let options = ResolverOptions {
            nameservers: Some(vec!["127.0.0.1:5353".parse().unwrap()]),
            ..ResolverOptions::default()
        };
        assert!(HickoryLookup::new(options).is_ok());
    }

    /// The hosts file is never read (module doc): a name it lists must be
    /// asked of the nameservers like any other. The wire test that asks for
    /// such a name needs one in the machine's /etc/hosts; this one does not.
    #[test]
    fn the_resolver_never_reads_the_hosts_file() {
        let options = ResolverOptions {
            nameservers: Some(vec!["127.0.0.1:5353".parse().unwrap()]),
            ..ResolverOptions::default()
        };
        let lookup = HickoryLookup::new(options).unwrap();
        assert_eq!(
            lookup.resolver.options().use_hosts_file,
            ResolveHosts::Never
        );
        assert_eq!(lookup.resolver.options().ndots, 0);
    }

    #[test]
    fn default_options_use_the_system_configuration() {
        let options = ResolverOptions::default();
        assert_eq!(options.nameservers, None);
        assert_eq!(options.timeout, Duration::from_secs(2));
        assert_eq!((options.attempts, options.cache_size), (2, 4096));
    }
}
