//! `tollgate lint`: a domain's SPF setup judged from the sender's side,
//! before receivers judge it.
//!
//! [`lint`] reads the domain's TXT records with their character-strings
//! kept apart ([`TxtStrings`]), walks the include/redirect tree the way
//! check_host would (RFC 7208 §4–§6) without a client address, counting
//! DNS-querying terms and void lookups over the whole tree (§4.6.4), and
//! looks at every record on the way: syntax, version tag, size, `ptr`,
//! `+all`, unreachable terms, networks. With client addresses it runs the
//! real engine ([`tollgate_spf::Spf`]) for each, and for a HELO name the
//! HELO identity (§2.3), the helo-dns and fcrdns stages of the milter.
//!
//! Every finding has a stable [`Code`]. Work is bounded whatever the zone
//! holds: each name is fetched once, the tree stops after
//! [`MAX_NODES`] records, [`MAX_NAMES`] distinct names and
//! [`MAX_DNS_ERRORS`] failed lookups, and no answer is followed further
//! than RFC 7208's limits let a receiver follow it.

mod client;
mod codes;
mod fetch;
mod terms;
mod tree;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use tollgate_dns::{CharacterStrings, Lookup, LookupResult, Mx, TextType, TxtStrings};
use tollgate_spf::SpfResult;

pub use codes::{Code, Severity};
pub use fetch::answer_size;

use crate::Outcome;

/// DNS-querying terms a receiver evaluates before permerror (RFC 7208 §4.6.4).
pub const LOOKUP_LIMIT: u32 = 10;
/// Void lookups a receiver accepts before permerror (RFC 7208 §4.6.4).
pub const VOID_LIMIT: u32 = 2;
/// Records (tree nodes) the lint follows at most.
pub const MAX_NODES: usize = 100;
/// Distinct names the lint queries at most while walking the tree.
pub const MAX_NAMES: usize = 60;
/// Failed (temporary) lookups after which the walk stops.
pub const MAX_DNS_ERRORS: usize = 3;
/// Findings of one code shown at most; the rest are summed up in one more.
pub const MAX_PER_CODE: usize = 20;

/// What to lint.
#[derive(Clone, Debug, Default)]
pub struct LintRequest {
    /// The domain whose SPF setup is checked.
    pub domain: String,
    /// Addresses the domain sends from (`--ip`), each checked as a client.
    pub ips: Vec<IpAddr>,
    /// The name its servers give in HELO/EHLO (`--helo`).
    pub helo: Option<String>,
    /// The receiving host's name, for the `r` macro.
    pub receiver: String,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The stable code.
    pub code: Code,
    /// What was found, naming the domain and term (may quote DNS data:
    /// escape it before printing).
    pub message: String,
    /// Where: the term, domain or address concerned.
    pub location: String,
}

impl Finding {
    /// The code's severity.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}

/// One record of the include/redirect tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// The domain whose record this is.
    pub domain: String,
    /// The SPF record found there (the first, if several).
    pub record: Option<String>,
    /// DNS-querying terms of this record that a receiver can reach.
    pub lookups: u32,
    /// Records it includes or redirects to, in evaluation order.
    pub children: Vec<TreeNode>,
}

/// The SPF result for one client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressResult {
    /// The address.
    pub ip: IpAddr,
    /// check_host's result.
    pub result: SpfResult,
    /// The term that decided, as written.
    pub mechanism: Option<String>,
    /// The domain whose record decided.
    pub domain: String,
    /// For errors and none: what went wrong.
    pub problem: Option<String>,
}

/// An fcrdns result for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcrdnsResult {
    /// The address.
    pub ip: IpAddr,
    /// The RFC 8601 iprev result.
    pub result: Outcome,
    /// What was found.
    pub detail: String,
}

/// What the lint found about the HELO name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeloReport {
    /// The HELO name.
    pub name: String,
    /// Its own SPF record.
    pub record: Option<String>,
    /// check_host(ip, helo, postmaster@helo) for each address.
    pub results: Vec<AddressResult>,
    /// Whether the name resolves to every address (`None` without addresses).
    pub resolves_to_ip: Option<bool>,
    /// Each address's forward-confirmed reverse DNS.
    pub fcrdns: Vec<FcrdnsResult>,
}

/// Everything the lint found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintReport {
    /// The domain checked.
    pub domain: String,
    /// Its SPF record, if one was found.
    pub record: Option<String>,
    /// DNS-querying terms over the whole tree.
    pub lookups: u32,
    /// Void lookups over the whole tree.
    pub void_lookups: u32,
    /// The include/redirect tree, from the domain's own record.
    pub tree: TreeNode,
    /// The findings, errors first.
    pub findings: Vec<Finding>,
    /// The result for each `--ip`.
    pub ips: Vec<AddressResult>,
    /// The HELO name's findings, with `--helo`.
    pub helo: Option<HeloReport>,
    /// DNS queries the lint made (answered from cache or not).
    pub queries: u32,
}

/// The overall verdict, as the exit status gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No errors (exit 0).
    Clean,
    /// At least one error (exit 1).
    Errors,
    /// The domain could not be checked: DNS trouble (exit 2).
    Unchecked,
}

impl Status {
    /// The exit status: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Clean => 0,
            Status::Errors => 1,
            Status::Unchecked => 2,
        }
    }
}

impl LintReport {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity() == severity)
            .count()
    }

    /// Whether a finding of `code` is present.
    pub fn has(&self, code: Code) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The verdict; with `strict`, warnings count as errors.
    pub fn status(&self, strict: bool) -> Status {
        if self.has(Code::DnsError) {
            Status::Unchecked
        } else if self.count(Severity::Error) > 0 || (strict && self.count(Severity::Warning) > 0) {
            Status::Errors
        } else {
            Status::Clean
        }
    }
}

/// Lints `request.domain` over `lookup`.
pub async fn lint<L: Lookup + TxtStrings>(lookup: &L, request: &LintRequest) -> LintReport {
    let lookup = Counted::new(lookup);
    // Names are compared in lower case (targets are lowered when expanded),
    // so a loop back to the root is found whatever case it was given in.
    let domain = request.domain.trim_end_matches('.').to_ascii_lowercase();
    let mut findings = Findings::default();
    let mut walker = tree::Walker::new(&lookup, &domain, &mut findings);
    let tree = walker.walk().await;
    let totals = walker.finish();
    let ips = client::addresses(&lookup, &domain, request, &mut findings).await;
    if totals.uses_ptr {
        client::ptr_names(&lookup, &request.ips, &mut findings).await;
    }
    let helo = match &request.helo {
        Some(name) => Some(client::helo(&lookup, name, request, &mut findings).await),
        None => None,
    };
    LintReport {
        domain,
        record: tree.record.clone(),
        lookups: totals.lookups,
        void_lookups: totals.voids,
        tree,
        findings: findings.finish(),
        ips,
        helo,
        queries: lookup.count(),
    }
}

/// Collects findings: drops exact repeats, keeps at most [`MAX_PER_CODE`]
/// of a code, orders them by severity.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(Code, String, String)>,
    per_code: HashMap<Code, usize>,
}

impl Findings {
    pub(crate) fn add(
        &mut self,
        code: Code,
        location: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (location, message) = (location.into(), message.into());
        if !self.seen.insert((code, location.clone(), message.clone())) {
            return;
        }
        let count = self.per_code.entry(code).or_default();
        *count += 1;
        if *count <= MAX_PER_CODE {
            self.list.push(Finding {
                code,
                message,
                location,
            });
        }
    }

    #[cfg(test)]
    pub(crate) fn has(&self, code: Code) -> bool {
        self.per_code.contains_key(&code)
    }

    fn finish(mut self) -> Vec<Finding> {
        let mut codes: Vec<_> = self.per_code.into_iter().collect();
        codes.sort();
        for (code, count) in codes {
            if count > MAX_PER_CODE {
                self.list.push(Finding {
                    code,
                    message: format!(
                        "{} more findings like these not shown",
                        count - MAX_PER_CODE
                    ),
                    location: String::new(),
                });
            }
        }
        self.list.sort_by_key(Finding::severity);
        self.list
    }
}

/// A lookup that counts the queries asked through it.
#[derive(Debug)]
struct Counted<'a, L> {
    inner: &'a L,
    count: AtomicU32,
}

impl<'a, L> Counted<'a, L> {
    fn new(inner: &'a L) -> Self {
        Counted {
            inner,
            count: AtomicU32::new(0),
        }
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    fn tick(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl<L: Lookup> Lookup for Counted<'_, L> {
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
        self.tick();
        self.inner.lookup_a(name)
    }
    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
        self.tick();
        self.inner.lookup_aaaa(name)
    }
    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
        self.tick();
        self.inner.lookup_mx(name)
    }
    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.tick();
        self.inner.lookup_txt(name)
    }
    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.tick();
        self.inner.lookup_ptr(ip)
    }
}

impl<L: TxtStrings> TxtStrings for Counted<'_, L> {
    fn lookup_strings(
        &self,
        name: &str,
        rtype: TextType,
    ) -> impl Future<Output = LookupResult<Vec<CharacterStrings>>> + Send {
        self.tick();
        self.inner.lookup_strings(name, rtype)
    }
}

#[cfg(test)]
mod tests;
