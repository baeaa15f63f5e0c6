//! An in-memory zone: a [`Lookup`] without a network, for tests, benchmarks
//! and offline use, and the data that `testdns` serves over the wire.
//!
//! Names match without regard to ASCII case. CNAMEs are followed (at most
//! [`MAX_CNAME_CHAIN`] links). A name may carry a [`Entry::Timeout`] marker:
//! queries for it then time out, except for record types listed before the
//! marker, which is the OpenSPF suite's convention for `TIMEOUT`.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Lookup, LookupError, LookupResult, Mx, normalize_name, reverse_name};

/// How many CNAME links a query follows before giving up with a server failure.
pub const MAX_CNAME_CHAIN: usize = 8;

/// The record types a zone holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// The obsolete SPF type 99 (served, never queried by tollgate).
    Spf,
    /// Reverse pointer.
    Ptr,
    /// Canonical name.
    Cname,
}

/// The data of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger.
    Mx(Mx),
    /// A TXT record as its character-strings.
    Txt(Vec<String>),
    /// An SPF (type 99) record as its character-strings.
    Spf(Vec<String>),
    /// A PTR target name.
    Ptr(String),
    /// A CNAME target name.
    Cname(String),
}

impl RecordData {
    /// The type of this record.
    pub fn record_type(&self) -> RecordType {
        match self {
            RecordData::A(_) => RecordType::A,
            RecordData::Aaaa(_) => RecordType::Aaaa,
            RecordData::Mx(_) => RecordType::Mx,
            RecordData::Txt(_) => RecordType::Txt,
            RecordData::Spf(_) => RecordType::Spf,
            RecordData::Ptr(_) => RecordType::Ptr,
            RecordData::Cname(_) => RecordType::Cname,
        }
    }
}

/// One entry under a name: a record, or the marker that makes later
/// queries time out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A record.
    Record(RecordData),
    /// Queries for this name time out, except for types listed before this marker.
    Timeout,
}

/// What a query of the zone produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The answer section: any CNAMEs followed (each with its owner name),
    /// then at least one record of the asked type.
    Records(Vec<(String, RecordData)>),
    /// The name exists but has no records of the asked type. Carries any CNAMEs followed.
    NoData(Vec<(String, RecordData)>),
    /// The name does not exist. Carries any CNAMEs followed.
    NxDomain(Vec<(String, RecordData)>),
    /// The query times out.
    Timeout,
    /// The query cannot be answered (a CNAME loop or too long a chain): SERVFAIL.
    ServFail,
}

/// An in-memory zone.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    names: HashMap<String, Vec<Entry>>,
}

impl Zone {
    /// An empty zone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `name` exist, with no records if it had none (queries give NODATA, not NXDOMAIN).
    pub fn add_name(&mut self, name: &str) -> &mut Self {
        self.names.entry(normalize_name(name)).or_default();
        self
    }

    /// Adds a record under `name`.
    pub fn add(&mut self, name: &str, data: RecordData) -> &mut Self {
        self.add_entry(name, Entry::Record(data))
    }

    /// Adds an entry (record or timeout marker) under `name`.
    pub fn add_entry(&mut self, name: &str, entry: Entry) -> &mut Self {
        self.names
            .entry(normalize_name(name))
            .or_default()
            .push(entry);
        self
    }

    /// Convenience: adds a TXT record made of one character-string.
    pub fn add_txt(&mut self, name: &str, text: &str) -> &mut Self {
        self.add(name, RecordData::Txt(vec![text.to_owned()]))
    }

    /// The entries under `name`, in the order they were added; `None` if
    /// the name does not exist.
    pub fn entries(&self, name: &str) -> Option<&[Entry]> {
        self.names.get(&normalize_name(name)).map(Vec::as_slice)
    }

    /// Whether the zone holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(&normalize_name(name))
    }

    /// All names in the zone (normalized), in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Answers a query as an authoritative server would: follows CNAMEs
    /// (unless CNAME itself is asked), honours timeout markers.
    pub fn query(&self, name: &str, rtype: RecordType) -> Answer {
        let mut chain = Vec::new();
        let mut current = normalize_name(name);
        for _ in 0..=MAX_CNAME_CHAIN {
            let Some(entries) = self.names.get(&current) else {
                return Answer::NxDomain(chain);
            };
            let mut found = Vec::new();
            let mut cname = None;
            for entry in entries {
                match entry {
                    Entry::Timeout if found.is_empty() && cname.is_none() => {
                        return Answer::Timeout;
                    }
                    Entry::Timeout => break,
                    Entry::Record(data) if data.record_type() == rtype => {
                        found.push((current.clone(), data.clone()));
                    }
                    Entry::Record(RecordData::Cname(target)) if cname.is_none() => {
                        cname = Some(target.clone());
                    }
                    Entry::Record(_) => {}
                }
            }
            if !found.is_empty() {
                chain.extend(found);
                return Answer::Records(chain);
            }
            match cname {
                Some(target) => {
                    chain.push((current, RecordData::Cname(target.clone())));
                    current = normalize_name(&target);
                }
                None => return Answer::NoData(chain),
            }
        }
        Answer::ServFail
    }

    fn resolve<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(RecordData) -> Option<T>,
    ) -> LookupResult<Vec<T>> {
        match self.query(name, rtype) {
            Answer::Records(records) => Ok(records
                .into_iter()
                .filter_map(|(_, data)| pick(data))
                .collect()),
            Answer::NoData(_) => Err(LookupError::NoData),
            Answer::NxDomain(_) => Err(LookupError::NxDomain),
            Answer::Timeout => Err(LookupError::Timeout),
            Answer::ServFail => Err(LookupError::ServerFailure("SERVFAIL".into())),
        }
    }
}

/// Runs a future over the zone to its end. The zone answers at once, so
/// everything built only on it (an SPF evaluation, a stage's check) is
/// ready on its first poll: no runtime is needed.
///
/// # Panics
///
/// When `f` is not ready on its first poll, i.e. it waits on something
/// other than the zone.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a future over the in-memory zone was not ready"),
    }
}

impl Lookup for Zone {
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
        ready(self.resolve(name, RecordType::A, |d| match d {
            RecordData::A(a) => Some(a),
            _ => None,
        }))
    }

    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
        ready(self.resolve(name, RecordType::Aaaa, |d| match d {
            RecordData::Aaaa(a) => Some(a),
            _ => None,
        }))
    }

    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
        ready(self.resolve(name, RecordType::Mx, |d| match d {
            RecordData::Mx(mx) => Some(mx),
            _ => None,
        }))
    }

    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        ready(self.resolve(name, RecordType::Txt, |d| match d {
            RecordData::Txt(strings) => Some(strings.concat()),
            _ => None,
        }))
    }

    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        ready(
            self.resolve(&reverse_name(ip), RecordType::Ptr, |d| match d {
                RecordData::Ptr(target) => Some(normalize_name(&target)),
                _ => None,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_regard_to_case() {
        let mut zone = Zone::new();
        zone.add(
            "Mail.Example.COM",
            RecordData::A("192.0.2.1".parse().unwrap()),
        );
        let got = block_on(zone.lookup_a("mail.example.com.")).unwrap();
        assert_eq!(got, vec!["192.0.2.1".parse::<Ipv4Addr>().unwrap()]);
    }

    #[test]
    fn missing_name_is_nxdomain_and_missing_type_is_nodata() {
        let mut zone = Zone::new();
        zone.add_txt("example.com", "hello");
        assert_eq!(
            block_on(zone.lookup_a("nowhere.example.com")),
            Err(LookupError::NxDomain)
        );
        assert_eq!(
            block_on(zone.lookup_a("example.com")),
            Err(LookupError::NoData)
        );
        assert!(LookupError::NoData.is_void() && !LookupError::Timeout.is_void());
    }

    #[test]
    fn txt_character_strings_are_concatenated() {
        let mut zone = Zone::new();
        zone.add(
            "example.com",
            RecordData::Txt(vec!["v=spf1 ip4:".into(), "192.0.2.5 -all".into()]),
        );
        assert_eq!(
            block_on(zone.lookup_txt("example.com")).unwrap(),
            vec!["v=spf1 ip4:192.0.2.5 -all".to_owned()]
        );
    }

    #[test]
    fn cname_is_followed_and_loops_fail() {
        let mut zone = Zone::new();
        zone.add(
            "www.example.com",
            RecordData::Cname("host.example.com".into()),
        );
        zone.add(
            "host.example.com",
            RecordData::A("192.0.2.9".parse().unwrap()),
        );
        zone.add(
            "loop1.example.com",
            RecordData::Cname("loop2.example.com".into()),
        );
        zone.add(
            "loop2.example.com",
            RecordData::Cname("loop1.example.com".into()),
        );
        assert_eq!(block_on(zone.lookup_a("www.example.com")).unwrap().len(), 1);
        assert!(matches!(
            block_on(zone.lookup_a("loop1.example.com")),
            Err(LookupError::ServerFailure(_))
        ));
    }

    #[test]
    fn timeout_marker_spares_types_listed_before_it() {
        let mut zone = Zone::new();
        zone.add_txt("slow.example.com", "v=spf1 -all");
        zone.add_entry("slow.example.com", Entry::Timeout);
        assert!(block_on(zone.lookup_txt("slow.example.com")).is_ok());
        assert_eq!(
            block_on(zone.lookup_a("slow.example.com")),
            Err(LookupError::Timeout)
        );
    }

    #[test]
    fn ptr_is_looked_up_under_the_reverse_name() {
        let mut zone = Zone::new();
        zone.add(
            "7.2.0.192.in-addr.arpa",
            RecordData::Ptr("mail.example.com.".into()),
        );
        assert_eq!(
            block_on(zone.lookup_ptr("192.0.2.7".parse().unwrap())).unwrap(),
            vec!["mail.example.com".to_owned()]
        );
    }
}
