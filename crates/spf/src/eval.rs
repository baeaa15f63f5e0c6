//! check_host (RFC 7208 §4–§6): record lookup and selection, mechanism
//! evaluation, include and redirect, the processing limits of §4.6.4 and
//! the explanation of §6.2.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use tollgate_dns::{Lookup, LookupError};

use crate::macros::{Letter, MacroContext, MacroString, MacroValues};
use crate::record::{Directive, Mechanism, Qualifier, Record};
use crate::result::{Explanation, Identity, QueryType, SpfOutput, SpfResult, TraceEntry};
use crate::{Options, RecordCache, domain};

/// The explanation used when a domain gives none (RFC 7208 §6.2 leaves the
/// default to the implementation).
pub const DEFAULT_EXPLANATION: &str = "%{c} is not allowed to send mail as %{o}";

/// What evaluating one record decided.
struct Verdict {
    result: SpfResult,
    domain: String,
    mechanism: Option<String>,
    problem: Option<String>,
    /// The `exp=` of the record whose directive decided a fail.
    exp: Option<Box<MacroString>>,
}

impl Verdict {
    fn error(result: SpfResult, domain: &str, problem: String) -> Verdict {
        Verdict {
            result,
            domain: domain.to_owned(),
            mechanism: None,
            problem: Some(problem),
            exp: None,
        }
    }

    fn perm(domain: &str, problem: impl Into<String>) -> Verdict {
        Verdict::error(SpfResult::PermError, domain, problem.into())
    }

    fn temp(domain: &str, qtype: QueryType, name: &str, err: &LookupError) -> Verdict {
        Verdict::error(
            SpfResult::TempError,
            domain,
            format!("{} looking up {qtype} for {name}", err.summary()),
        )
    }
}

/// The state of one evaluation: the inputs, the limits spent, the trace.
pub(crate) struct Eval<'a, L> {
    lookup: &'a L,
    opts: &'a Options,
    records: Option<&'a RecordCache>,
    ip: IpAddr,
    identity: Identity,
    sender: String,
    local_part: String,
    sender_domain: String,
    helo: &'a str,
    terms: u32,
    voids: u32,
    queries: u32,
    trace: Vec<TraceEntry>,
    validated_name: Option<String>,
}

impl<'a, L: Lookup> Eval<'a, L> {
    pub(crate) fn new(
        lookup: &'a L,
        opts: &'a Options,
        records: Option<&'a RecordCache>,
        ip: IpAddr,
        identity: Identity,
        sender: &crate::Sender,
        helo: &'a str,
    ) -> Self {
        // RFC 7208 §5: an IPv4-mapped IPv6 address is an IPv4 client.
        let ip = crate::address::canonical(ip);
        let (local_part, sender_domain) = (sender.local_part.as_str(), sender.domain.as_str());
        let local_part = if local_part.is_empty() {
            "postmaster"
        } else {
            local_part
        };
        let sender_domain = sender_domain.strip_suffix('.').unwrap_or(sender_domain);
        Eval {
            lookup,
            opts,
            records,
            ip,
            identity,
            sender: format!("{local_part}@{sender_domain}"),
            local_part: local_part.to_owned(),
            sender_domain: sender_domain.to_owned(),
            helo,
            terms: 0,
            voids: 0,
            queries: 0,
            trace: Vec::new(),
            validated_name: None,
        }
    }

    /// Runs check_host for the sender's domain and assembles the output.
    pub(crate) async fn run(mut self) -> SpfOutput {
        let checked = self.sender_domain.clone();
        let verdict = self.check_host(checked.clone()).await;
        let explanation = if verdict.result == SpfResult::Fail {
            Some(self.explain(&verdict).await)
        } else {
            None
        };
        SpfOutput {
            identity: self.identity,
            ip: self.ip,
            helo: self.helo.to_owned(),
            sender: self.sender,
            checked_domain: checked,
            result: verdict.result,
            domain: verdict.domain,
            mechanism: verdict.mechanism,
            explanation,
            problem: verdict.problem,
            lookups: self.terms,
            void_lookups: self.voids,
            queries: self.queries,
            trace: self.trace,
        }
    }

    /// check_host(<ip>, <domain>, <sender>) of RFC 7208 §4.
    fn check_host(&mut self, domain: String) -> Pin<Box<dyn Future<Output = Verdict> + Send + '_>> {
        Box::pin(async move {
            // §4.3: a malformed or single-label domain gives none.
            if let Err(why) = domain::check_domain(&domain) {
                let mut v = Verdict::error(SpfResult::None, &domain, why);
                v.domain = domain;
                return v;
            }
            // §4.4: the TXT lookup.
            let records = match self.txt(&domain).await {
                Ok(records) => records,
                Err(e) if e.is_void() => {
                    return Verdict::error(
                        SpfResult::None,
                        &domain,
                        format!("no SPF record at {domain}"),
                    );
                }
                Err(e) => return Verdict::temp(&domain, QueryType::Txt, &domain, &e),
            };
            // §4.5: exactly one v=spf1 record.
            let mut spf = records.iter().filter(|r| Record::is_spf1(r));
            let Some(text) = spf.next() else {
                return Verdict::error(
                    SpfResult::None,
                    &domain,
                    format!("no SPF record at {domain}"),
                );
            };
            if spf.next().is_some() {
                return Verdict::perm(&domain, format!("more than one SPF record at {domain}"));
            }
            let parsed = match self.records {
                Some(records) => records.parse(text),
                None => Record::parse(text).map(Arc::new),
            };
            let record = match parsed {
                Ok(record) => record,
                Err(e) => {
                    return Verdict::perm(&domain, format!("the SPF record at {domain} has a {e}"));
                }
            };
            self.evaluate(&record, domain).await
        })
    }

    /// §4.6: directives left to right, then redirect, then neutral (§4.7).
    async fn evaluate(&mut self, record: &Record, domain: String) -> Verdict {
        for directive in &record.directives {
            match self.matches(directive, &domain).await {
                Ok(false) => {}
                Ok(true) => {
                    let result = match directive.qualifier {
                        Qualifier::Pass => SpfResult::Pass,
                        Qualifier::Fail => SpfResult::Fail,
                        Qualifier::SoftFail => SpfResult::SoftFail,
                        Qualifier::Neutral => SpfResult::Neutral,
                    };
                    return Verdict {
                        result,
                        domain,
                        mechanism: Some(directive.text.clone()),
                        problem: None,
                        exp: record.exp.clone().map(Box::new),
                    };
                }
                Err(verdict) => return verdict,
            }
        }
        if let Some(redirect) = &record.redirect {
            // §6.1: redirect counts as a DNS-querying term.
            if let Err(v) = self.spend_term(&domain) {
                return v;
            }
            let target = self.expand_domain(redirect, &domain).await;
            let inner = self.check_host(target.clone()).await;
            if inner.result == SpfResult::None {
                return Verdict::perm(
                    &domain,
                    format!("redirect={target} names a domain with no SPF record"),
                );
            }
            return inner;
        }
        Verdict {
            result: SpfResult::Neutral,
            domain,
            mechanism: None,
            problem: None,
            exp: None,
        }
    }

    /// Whether a directive's mechanism matches (§5); `Err` for the errors
    /// that end the evaluation.
    async fn matches(&mut self, directive: &Directive, domain: &str) -> Result<bool, Verdict> {
        let mechanism = &directive.mechanism;
        if mechanism.queries_dns() {
            self.spend_term(domain)?;
        }
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_network(self.ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_network(self.ip, IpAddr::V6(*net), *len)),
            Mechanism::Include(spec) => {
                // §5.2: only an inner pass matches.
                let target = self.expand_domain(spec, domain).await;
                let inner = self.check_host(target.clone()).await;
                match inner.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError | SpfResult::PermError => Err(inner),
                    SpfResult::None => Err(Verdict::perm(
                        domain,
                        format!("include:{target} names a domain with no SPF record"),
                    )),
                }
            }
            Mechanism::A {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let target = self.target(spec.as_ref(), domain).await;
                let addrs = self.addresses(&target, domain, true).await?;
                Ok(addrs.iter().any(|a| self.in_dual(*a, *cidr4, *cidr6)))
            }
            Mechanism::Mx {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let target = self.target(spec.as_ref(), domain).await;
                self.mx_matches(&target, domain, *cidr4, *cidr6).await
            }
            Mechanism::Ptr(spec) => {
                let target = self.target(spec.as_ref(), domain).await;
                self.ptr_matches(&target, domain).await
            }
            Mechanism::Exists(spec) => {
                // §5.7: always an A query, whatever the client's family.
                let target = self.expand_domain(spec, domain).await;
                if domain::check_query_name(&target).is_err() {
                    return Ok(false);
                }
                match self.a(&target).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_void() => self.void(domain).map(|()| false),
                    Err(e) => Err(Verdict::temp(domain, QueryType::A, &target, &e)),
                }
            }
        }
    }

    /// §5.4: MX lookup, at most 10 names, address lookups of each.
    async fn mx_matches(
        &mut self,
        target: &str,
        domain: &str,
        cidr4: u8,
        cidr6: u8,
    ) -> Result<bool, Verdict> {
        if domain::check_query_name(target).is_err() {
            return Ok(false);
        }
        let mut mxs = match self.mx(target).await {
            Ok(mxs) => mxs,
            Err(e) if e.is_void() => return self.void(domain).map(|()| false),
            Err(e) => return Err(Verdict::temp(domain, QueryType::Mx, target, &e)),
        };
        if mxs.len() > self.opts.max_names {
            return Err(Verdict::perm(
                domain,
                format!(
                    "mx:{target} has {} MX records, more than {}",
                    mxs.len(),
                    self.opts.max_names
                ),
            ));
        }
        mxs.sort_by_key(|mx| mx.preference);
        for mx in mxs {
            let host = mx.exchange.trim_end_matches('.');
            // RFC 7505: a null MX names no host.
            if host.is_empty() || domain::check_query_name(host).is_err() {
                continue;
            }
            let addrs = self.addresses(host, domain, false).await?;
            if addrs.iter().any(|a| self.in_dual(*a, cidr4, cidr6)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// §5.5: the validated names of the client that end in `target`.
    async fn ptr_matches(&mut self, target: &str, domain: &str) -> Result<bool, Verdict> {
        let names = match self.ptr().await {
            Ok(names) => names,
            Err(e) if e.is_void() => return self.void(domain).map(|()| false),
            // §5.5: a DNS error on the PTR lookup means no match.
            Err(_) => return Ok(false),
        };
        let candidates: Vec<String> = names
            .into_iter()
            .take(self.opts.max_names)
            .filter(|name| domain::is_within(name, target))
            .collect();
        for name in candidates {
            if self.validates(&name).await {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `name` resolves back to the client address; errors skip it (§5.5).
    async fn validates(&mut self, name: &str) -> bool {
        if domain::check_query_name(name).is_err() {
            return false;
        }
        let ip = self.ip;
        let found = match ip {
            IpAddr::V4(_) => self.a(name).await.map(|v| v.contains(&ip)),
            IpAddr::V6(_) => self.aaaa(name).await.map(|v| v.contains(&ip)),
        };
        found.unwrap_or(false)
    }

    /// The `p` macro: a validated name of the client, preferring the
    /// current domain and its subdomains (RFC 7208 §7.3); computed once.
    async fn validated_name(&mut self, domain: &str) -> String {
        if let Some(name) = &self.validated_name {
            return name.clone();
        }
        let mut names: Vec<String> = match self.ptr().await {
            Ok(names) => names.into_iter().take(self.opts.max_names).collect(),
            Err(_) => Vec::new(),
        };
        // Stable sort: exact domain first, then subdomains, then the rest.
        names.sort_by_key(|n| {
            if n.eq_ignore_ascii_case(domain) {
                0
            } else if domain::is_within(n, domain) {
                1
            } else {
                2
            }
        });
        let mut chosen = "unknown".to_owned();
        for name in names {
            if self.validates(&name).await {
                chosen = name;
                break;
            }
        }
        self.validated_name = Some(chosen.clone());
        chosen
    }

    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.expand_domain(spec, domain).await,
            None => domain.to_owned(),
        }
    }

    /// A domain-spec of any mechanism or modifier (a, mx, ptr, exists,
    /// include, redirect, exp) as the name to query: the one expansion
    /// path for names, which keeps the tail of a long expansion (RFC 7208
    /// §7.3, [`MacroString::expand_domain`]).
    async fn expand_domain(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated = self.validated_for(spec, domain).await;
        spec.expand_domain(&self.values(domain, &validated))
    }

    /// The explanation text that `exp=` pointed at (§6.2), read from its
    /// start ([`MacroString::expand`]); never a name to query.
    async fn expand_text(&mut self, text: &MacroString, domain: &str) -> String {
        let validated = self.validated_for(text, domain).await;
        text.expand(&self.values(domain, &validated))
    }

    /// The `p` value when `spec` uses it (it costs DNS queries), else empty.
    async fn validated_for(&mut self, spec: &MacroString, domain: &str) -> String {
        if spec.uses(Letter::ValidatedName) {
            self.validated_name(domain).await
        } else {
            String::new()
        }
    }

    fn values<'v>(&'v self, domain: &'v str, validated: &'v str) -> MacroValues<'v> {
        MacroValues {
            sender: &self.sender,
            local_part: &self.local_part,
            sender_domain: &self.sender_domain,
            domain,
            ip: self.ip,
            helo: self.helo,
            validated_name: validated,
            receiver: &self.opts.receiver,
            timestamp: self.opts.timestamp.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        }
    }

    /// §6.2: the domain's explanation if it has a usable one, else the default.
    async fn explain(&mut self, verdict: &Verdict) -> Explanation {
        if let Some(exp) = &verdict.exp
            && let Some(text) = self.domain_explanation(exp, &verdict.domain).await
        {
            return Explanation {
                text,
                from_domain: true,
            };
        }
        let default = MacroString::parse(DEFAULT_EXPLANATION, MacroContext::Explanation)
            .expect("the default explanation parses");
        Explanation {
            text: default.expand(&self.values(&verdict.domain, "unknown")),
            from_domain: false,
        }
    }

    async fn domain_explanation(&mut self, exp: &MacroString, domain: &str) -> Option<String> {
        let name = self.expand_domain(exp, domain).await;
        domain::check_query_name(&name).ok()?;
        // Explanation lookups count toward no limit (§4.6.4), only toward `queries`.
        let records = self.txt(&name).await.ok()?;
        let [record] = records.as_slice() else {
            return None;
        };
        let text = MacroString::parse(record, MacroContext::Explanation).ok()?;
        let expanded = self.expand_text(&text, domain).await;
        let printable: String = expanded
            .chars()
            .filter(|c| matches!(c, ' '..='~'))
            .collect();
        let printable = printable.trim();
        (!printable.is_empty()).then(|| printable.to_owned())
    }

    fn in_dual(&self, addr: IpAddr, cidr4: u8, cidr6: u8) -> bool {
        match addr {
            IpAddr::V4(_) => in_network(self.ip, addr, cidr4),
            IpAddr::V6(_) => in_network(self.ip, addr, cidr6),
        }
    }

    fn spend_term(&mut self, domain: &str) -> Result<(), Verdict> {
        self.terms += 1;
        if self.terms > self.opts.max_dns_terms {
            return Err(Verdict::perm(
                domain,
                format!("more than {} DNS lookups", self.opts.max_dns_terms),
            ));
        }
        Ok(())
    }

    fn void(&mut self, domain: &str) -> Result<(), Verdict> {
        self.voids += 1;
        if self.voids > self.opts.max_void_lookups {
            return Err(Verdict::perm(
                domain,
                format!(
                    "more than {} void DNS lookups (no such name or no records)",
                    self.opts.max_void_lookups
                ),
            ));
        }
        Ok(())
    }

    /// The A or AAAA records of `name`, by the client's family. A void
    /// answer is an empty list (counted as a void lookup when `term` is
    /// true); other errors are temperror.
    async fn addresses(
        &mut self,
        name: &str,
        domain: &str,
        term: bool,
    ) -> Result<Vec<IpAddr>, Verdict> {
        if domain::check_query_name(name).is_err() {
            return Ok(Vec::new());
        }
        let (qtype, result) = match self.ip {
            IpAddr::V4(_) => (QueryType::A, self.a(name).await),
            IpAddr::V6(_) => (QueryType::Aaaa, self.aaaa(name).await),
        };
        match result {
            Ok(addrs) => Ok(addrs),
            Err(e) if e.is_void() => {
                if term {
                    self.void(domain)?;
                }
                Ok(Vec::new())
            }
            Err(e) => Err(Verdict::temp(domain, qtype, name, &e)),
        }
    }

    async fn a(&mut self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let result = self.lookup.lookup_a(name).await;
        let result = result.map(|v| v.into_iter().map(IpAddr::V4).collect::<Vec<_>>());
        self.note(QueryType::A, name, &result);
        result
    }

    async fn aaaa(&mut self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let result = self.lookup.lookup_aaaa(name).await;
        let result = result.map(|v| v.into_iter().map(IpAddr::V6).collect::<Vec<_>>());
        self.note(QueryType::Aaaa, name, &result);
        result
    }

    async fn mx(&mut self, name: &str) -> Result<Vec<tollgate_dns::Mx>, LookupError> {
        let result = self.lookup.lookup_mx(name).await;
        self.queries += 1;
        if self.opts.trace {
            let outcome = match &result {
                Ok(mxs) => Ok(mxs
                    .iter()
                    .map(|m| format!("{} {}", m.preference, m.exchange))
                    .collect()),
                Err(e) => Err(e.clone()),
            };
            self.trace.push(TraceEntry {
                qtype: QueryType::Mx,
                name: name.to_owned(),
                outcome,
            });
        }
        result
    }

    async fn txt(&mut self, name: &str) -> Result<Vec<String>, LookupError> {
        let result = self.lookup.lookup_txt(name).await;
        self.note(QueryType::Txt, name, &result);
        result
    }

    async fn ptr(&mut self) -> Result<Vec<String>, LookupError> {
        let ip = self.ip;
        let result = self.lookup.lookup_ptr(ip).await;
        self.note(QueryType::Ptr, &ip.to_string(), &result);
        result
    }

    fn note<T: ToString>(
        &mut self,
        qtype: QueryType,
        name: &str,
        result: &Result<Vec<T>, LookupError>,
    ) {
        self.queries += 1;
        if self.opts.trace {
            self.trace.push(TraceEntry {
                qtype,
                name: name.to_owned(),
                outcome: match result {
                    Ok(v) => Ok(v.iter().map(ToString::to_string).collect()),
                    Err(e) => Err(e.clone()),
                },
            });
        }
    }
}

/// Whether `ip` is inside `net/len`; addresses of different families never match.
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::in_network;

    #[test]
    fn network_membership_respects_prefix_and_family() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(in_network(ip("192.0.2.7"), ip("192.0.2.0"), 24));
        assert!(!in_network(ip("192.0.2.7"), ip("192.0.3.0"), 24));
        assert!(in_network(ip("192.0.2.7"), ip("203.0.113.1"), 0));
        assert!(in_network(ip("2001:db8::1"), ip("2001:db8::"), 32));
        assert!(!in_network(ip("2001:db9::1"), ip("2001:db8::"), 32));
        assert!(!in_network(ip("192.0.2.7"), ip("::"), 0));
        assert!(in_network(ip("192.0.2.7"), ip("192.0.2.7"), 32));
    }
}
