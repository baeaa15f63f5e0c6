//! Stage `sender-domain`: whether the MAIL FROM domain can receive mail,
//! Postfix's `reject_unknown_sender_domain` with RFC 7505 and the MX sanity
//! administrators check by hand.
//!
//! - The domain does not exist (NXDOMAIN on MX): `fail`.
//! - A null MX (RFC 7505 §3: one MX, preference 0, exchange the root):
//!   `nullmx`, the domain says it accepts no mail.
//! - MX hosts: at most [`MAX_MX_HOSTS`] of them, most preferred first, are
//!   resolved (A, then AAAA) until one has an address routable on the
//!   internet: `pass`. Every address found not routable (loopback,
//!   private, link-local, shared, reserved, multicast): `unroutable`. No
//!   MX host resolves: `fail`.
//! - No MX records: the domain itself is the implicit MX (RFC 5321 §5.1),
//!   judged the same way.
//! - A DNS failure that could change the result: `temperror`. One MX host
//!   timing out while another is routable is still `pass`.
//!
//! What is odd but not decisive (an MX host that is an address literal,
//! more MX hosts than are looked at, an MX host that does not resolve while
//! another does) is recorded as notes. The null sender has no domain: the
//! caller does not run this stage.

use std::collections::HashSet;
use std::net::IpAddr;

use tollgate_dns::{Lookup, LookupError, LookupResult, Mx};

use crate::Outcome;
use crate::routable::unroutable;

/// How many MX hosts are resolved (RFC 7208 §4.6.4 uses the same bound
/// for the `mx` mechanism); with an A and an AAAA query each, at most 20
/// address queries.
pub const MAX_MX_HOSTS: usize = 10;

/// The stage's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub outcome: Outcome,
    pub detail: String,
    /// Facts about the MX set that are not results.
    pub notes: Vec<String>,
    /// The MX host names, most preferred first, without duplicates or a
    /// null MX; empty when the domain has no MX records.
    pub mx: Vec<String>,
}

impl Finding {
    fn new(outcome: Outcome, detail: String) -> Finding {
        Finding {
            outcome,
            detail,
            notes: Vec::new(),
            mx: Vec::new(),
        }
    }
}

/// Runs the sender-domain stage for `domain` (the MAIL FROM domain).
pub async fn check<L: Lookup>(lookup: &L, domain: &str) -> Finding {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if let Some(finding) = not_looked_up(domain) {
        return finding;
    }
    let answer = lookup.lookup_mx(domain).await;
    check_mx_answer(lookup, domain, answer).await
}

/// Runs the stage from an MX answer already at hand (the one SPF's `mx`
/// mechanism asked for, say), so that the MX query is not repeated.
pub async fn check_mx_answer<L: Lookup>(
    lookup: &L,
    domain: &str,
    answer: LookupResult<Vec<Mx>>,
) -> Finding {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if let Some(finding) = not_looked_up(domain) {
        return finding;
    }
    match answer {
        Ok(records) => judge_mx_set(lookup, domain, records).await,
        Err(LookupError::NxDomain) => {
            Finding::new(Outcome::Fail, format!("{domain} does not exist"))
        }
        // RFC 5321 §5.1: no MX records, the domain itself is the mail host.
        Err(LookupError::NoData) => implicit_mx(lookup, domain).await,
        Err(e) => Finding::new(
            Outcome::TempError,
            format!(
                "{domain} could not be checked: {} looking up MX",
                e.summary()
            ),
        ),
    }
}

/// The finding for a domain that is not looked up: an address literal
/// (Postfix does not check those either) or a name that cannot exist in
/// the DNS.
fn not_looked_up(domain: &str) -> Option<Finding> {
    if domain.starts_with('[') && domain.ends_with(']') {
        return Some(Finding::new(
            Outcome::Pass,
            format!("{domain} is an address literal: not checked"),
        ));
    }
    // RFC 1035 §2.3.4: a name of at most 253 characters in text, labels of 1 to 63.
    let impossible = domain.is_empty()
        || domain.len() > 253
        || domain.split('.').any(|l| l.is_empty() || l.len() > 63);
    impossible.then(|| {
        let shown = crate::reply::clean(domain);
        Finding::new(Outcome::Fail, format!("{shown} is not a valid domain name"))
    })
}

/// The exchange of a null MX is the root: `""` from the resolver adapter,
/// `"."` as zone data may spell it.
fn is_root(exchange: &str) -> bool {
    exchange.is_empty() || exchange == "."
}

/// An MX host name that is an address (`192.0.2.1` or `[192.0.2.1]`).
fn address_literal(host: &str) -> Option<IpAddr> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
    inner.parse().ok()
}

/// Judges an MX answer of at least one record.
async fn judge_mx_set<L: Lookup>(lookup: &L, domain: &str, mut records: Vec<Mx>) -> Finding {
    // RFC 7505 §3: a single MX whose exchange is the root.
    if let [only] = records.as_slice()
        && is_root(&only.exchange)
    {
        let mut finding = Finding::new(
            Outcome::NullMx,
            format!("{domain} publishes a null MX: it accepts no mail (RFC 7505)"),
        );
        if only.preference != 0 {
            finding.notes.push(format!(
                "the null MX of {domain} has preference {}, not 0 (RFC 7505 §3)",
                only.preference
            ));
        }
        return finding;
    }
    let mut notes = Vec::new();
    if records.iter().any(|r| is_root(&r.exchange)) {
        notes.push(format!(
            "{domain} mixes a null MX with other MX records (RFC 7505 §3 forbids it); the null MX is ignored"
        ));
    }
    // RFC 5321 §5.1: the most preferred first (a stable sort keeps answer order among equals).
    records.sort_by_key(|r| r.preference);
    // Duplicates dropped in one pass: an answer may hold thousands of records.
    let mut seen = HashSet::new();
    let mut hosts: Vec<String> = Vec::new();
    for record in records.iter().filter(|r| !is_root(&r.exchange)) {
        let host = record
            .exchange
            .strip_suffix('.')
            .unwrap_or(&record.exchange);
        if seen.insert(host.to_ascii_lowercase()) {
            hosts.push(host.to_owned());
        }
    }
    if hosts.len() > MAX_MX_HOSTS {
        notes.push(format!(
            "{domain} has {} MX hosts; only the {MAX_MX_HOSTS} most preferred were looked at",
            hosts.len()
        ));
    }
    let mut finding = judge_hosts(lookup, domain, &hosts, notes).await;
    finding.mx = hosts;
    finding
}

/// What the addresses of one mail host showed.
#[derive(Debug, Default)]
struct HostAddresses {
    /// A routable address, if one was found.
    routable: Option<IpAddr>,
    /// The unroutable addresses found, with why.
    unroutable: Vec<(IpAddr, &'static str)>,
    /// The first temporary failure of its A or AAAA lookup.
    temporary: Option<LookupError>,
}

impl HostAddresses {
    fn has_address(&self) -> bool {
        self.routable.is_some() || !self.unroutable.is_empty()
    }

    fn take(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        for ip in addrs {
            match unroutable(ip) {
                Some(why) => self.unroutable.push((ip, why)),
                None => {
                    self.routable = Some(ip);
                    return;
                }
            }
        }
    }
}

/// Resolves `host` (A, then AAAA unless A already gave a routable address).
async fn resolve<L: Lookup>(lookup: &L, host: &str) -> HostAddresses {
    let mut found = HostAddresses::default();
    if let Some(ip) = address_literal(host) {
        found.take([ip]);
        return found;
    }
    match lookup.lookup_a(host).await {
        Ok(addrs) => found.take(addrs.into_iter().map(IpAddr::V4)),
        Err(e) if e.is_temporary() => found.temporary = Some(e),
        Err(_) => {}
    }
    if found.routable.is_some() {
        return found;
    }
    match lookup.lookup_aaaa(host).await {
        Ok(addrs) => found.take(addrs.into_iter().map(IpAddr::V6)),
        Err(e) if e.is_temporary() && found.temporary.is_none() => found.temporary = Some(e),
        Err(_) => {}
    }
    found
}

/// Resolves the MX hosts, most preferred first, until one is routable.
async fn judge_hosts<L: Lookup>(
    lookup: &L,
    domain: &str,
    hosts: &[String],
    mut notes: Vec<String>,
) -> Finding {
    let mut looked: Vec<(&str, HostAddresses)> = Vec::new();
    for host in hosts.iter().take(MAX_MX_HOSTS) {
        if address_literal(host).is_some() {
            notes.push(format!(
                "MX host {host} is an address, not a host name (RFC 5321 §5.1 wants a name)"
            ));
        }
        let found = resolve(lookup, host).await;
        if let Some(ip) = found.routable {
            notes.extend(host_notes(&looked));
            let detail = format!("{domain} has MX host {host} at {ip}");
            return Finding {
                outcome: Outcome::Pass,
                detail,
                notes,
                mx: Vec::new(),
            };
        }
        looked.push((host, found));
    }
    let temporary = looked
        .iter()
        .find_map(|(host, found)| found.temporary.as_ref().map(|e| (*host, e)));
    let (outcome, detail) = if let Some((host, e)) = temporary {
        let detail = format!(
            "{domain} could not be checked: {} looking up MX host {host}",
            e.summary()
        );
        (Outcome::TempError, detail)
    } else if looked.iter().any(|(_, found)| found.has_address()) {
        let shown: Vec<String> = looked
            .iter()
            .filter_map(|(host, found)| {
                let (ip, why) = found.unroutable.first()?;
                Some(format!("{host} at {ip} ({why})"))
            })
            .take(3)
            .collect();
        let detail = format!(
            "no MX host of {domain} has an address routable on the internet: {}",
            shown.join(", ")
        );
        (Outcome::Unroutable, detail)
    } else {
        (
            Outcome::Fail,
            format!("no MX host of {domain} has an address"),
        )
    };
    if outcome != Outcome::Fail {
        notes.extend(host_notes(&looked));
    }
    Finding {
        outcome,
        detail,
        notes,
        mx: Vec::new(),
    }
}

/// Notes on the MX hosts looked at that did not give a routable address.
fn host_notes(looked: &[(&str, HostAddresses)]) -> Vec<String> {
    looked
        .iter()
        .map(|(host, found)| {
            if let Some((ip, why)) = found.unroutable.first() {
                format!("MX host {host} resolves to {ip} ({why})")
            } else if let Some(e) = &found.temporary {
                format!("MX host {host} could not be looked up: {}", e.summary())
            } else {
                format!("MX host {host} does not resolve")
            }
        })
        .collect()
}

/// RFC 5321 §5.1: a domain without MX records is its own mail host.
async fn implicit_mx<L: Lookup>(lookup: &L, domain: &str) -> Finding {
    let found = resolve(lookup, domain).await;
    let mut finding = if let Some(ip) = found.routable {
        Finding::new(
            Outcome::Pass,
            format!(
                "{domain} has no MX record; its own address {ip} receives mail (RFC 5321 §5.1)"
            ),
        )
    } else if let Some(e) = &found.temporary {
        Finding::new(
            Outcome::TempError,
            format!(
                "{domain} could not be checked: {} looking up its address (no MX record)",
                e.summary()
            ),
        )
    } else if let Some((ip, why)) = found.unroutable.first() {
        Finding::new(
            Outcome::Unroutable,
            format!(
                "{domain} has no MX record and its own address {ip} is not routable on the internet ({why})"
            ),
        )
    } else {
        Finding::new(
            Outcome::Fail,
            format!("{domain} has no MX record and no address"),
        )
    };
    if finding.outcome == Outcome::Pass || finding.outcome == Outcome::Unroutable {
        finding.notes.push(format!(
            "{domain} has no MX record: the domain itself is its mail host"
        ));
    }
    finding
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_dns::memory::block_on;

    use tollgate_dns::memory::{Entry, RecordData, Zone};

    fn mx(zone: &mut Zone, domain: &str, preference: u16, exchange: &str) {
        zone.add(
            domain,
            RecordData::Mx(Mx {
                preference,
                exchange: exchange.to_owned(),
            }),
        );
    }

    fn a(zone: &mut Zone, name: &str, ip: &str) {
        zone.add(name, RecordData::A(ip.parse().unwrap()));
    }

    fn aaaa(zone: &mut Zone, name: &str, ip: &str) {
        zone.add(name, RecordData::Aaaa(ip.parse().unwrap()));
    }

    #[test]
    fn nxdomain_is_fail() {
        let found = block_on(check(&Zone::new(), "nowhere.example.test"));
        assert_eq!(found.outcome, Outcome::Fail);
        assert_eq!(found.detail, "nowhere.example.test does not exist");
    }

    #[test]
    fn null_mx_is_nullmx_whether_root_is_spelled_empty_or_dot() {
        for root in ["", "."] {
            let mut zone = Zone::new();
            mx(&mut zone, "example.test", 0, root);
            let found = block_on(check(&zone, "example.test"));
            assert_eq!(found.outcome, Outcome::NullMx, "root spelled {root:?}");
            assert_eq!(
                found.detail,
                "example.test publishes a null MX: it accepts no mail (RFC 7505)"
            );
            assert!(found.notes.is_empty() && found.mx.is_empty());
        }
    }

    #[test]
    fn null_mx_with_nonzero_preference_is_nullmx_with_a_note() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::NullMx);
        assert_eq!(
            found.notes,
            ["the null MX of example.test has preference 10, not 0 (RFC 7505 §3)"]
        );
    }

    #[test]
    fn null_mx_among_other_records_is_ignored_with_a_note() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 0, "");
        mx(&mut zone, "example.test", 10, "mx.example.test");
        a(&mut zone, "mx.example.test", "192.0.2.25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(found.mx, ["mx.example.test"]);
        assert!(
            found.notes[0].contains("mixes a null MX"),
            "{:?}",
            found.notes
        );
    }

    #[test]
    fn most_preferred_routable_host_passes_and_earlier_hosts_are_noted() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 20, "backup.example.test");
        mx(&mut zone, "example.test", 5, "gone.example.test");
        mx(&mut zone, "example.test", 10, "internal.example.test");
        a(&mut zone, "internal.example.test", "10.0.0.25");
        a(&mut zone, "backup.example.test", "192.0.2.26");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.detail,
            "example.test has MX host backup.example.test at 192.0.2.26"
        );
        assert_eq!(
            found.mx,
            [
                "gone.example.test",
                "internal.example.test",
                "backup.example.test"
            ]
        );
        assert_eq!(
            found.notes,
            [
                "MX host gone.example.test does not resolve",
                "MX host internal.example.test resolves to 10.0.0.25 (private (10.0.0.0/8))",
            ]
        );
    }

    #[test]
    fn only_private_addresses_is_unroutable() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "mx1.example.test");
        mx(&mut zone, "example.test", 20, "mx2.example.test");
        a(&mut zone, "mx1.example.test", "192.168.1.25");
        aaaa(&mut zone, "mx2.example.test", "fd00::25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Unroutable);
        assert_eq!(
            found.detail,
            "no MX host of example.test has an address routable on the internet: mx1.example.test at 192.168.1.25 (private (192.168.0.0/16)), mx2.example.test at fd00::25 (unique local (fc00::/7))"
        );
    }

    #[test]
    fn no_host_resolving_is_fail() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "mx1.example.test");
        zone.add_name("mx2.example.test");
        mx(&mut zone, "example.test", 20, "mx2.example.test");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Fail);
        assert_eq!(found.detail, "no MX host of example.test has an address");
    }

    #[test]
    fn timeout_decides_only_when_no_host_is_routable() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "slow.example.test");
        mx(&mut zone, "example.test", 20, "internal.example.test");
        zone.add_entry("slow.example.test", Entry::Timeout);
        a(&mut zone, "internal.example.test", "10.0.0.25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::TempError);
        assert_eq!(
            found.detail,
            "example.test could not be checked: DNS timeout looking up MX host slow.example.test"
        );
        // Once another host is routable, the timeout is only a note.
        a(&mut zone, "internal.example.test", "192.0.2.25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.notes,
            ["MX host slow.example.test could not be looked up: DNS timeout"]
        );
    }

    #[test]
    fn mx_lookup_timeout_is_temperror() {
        let mut zone = Zone::new();
        zone.add_entry("example.test", Entry::Timeout);
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::TempError);
        assert_eq!(
            found.detail,
            "example.test could not be checked: DNS timeout looking up MX"
        );
    }

    #[test]
    fn address_literal_mx_host_is_used_as_its_address_with_a_note() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "192.0.2.25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.notes,
            ["MX host 192.0.2.25 is an address, not a host name (RFC 5321 §5.1 wants a name)"]
        );
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "[10.0.0.25]");
        assert_eq!(
            block_on(check(&zone, "example.test")).outcome,
            Outcome::Unroutable
        );
    }

    #[test]
    fn implicit_mx_is_the_domain_itself() {
        let mut zone = Zone::new();
        aaaa(&mut zone, "example.test", "2001:db8::25");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.detail,
            "example.test has no MX record; its own address 2001:db8::25 receives mail (RFC 5321 §5.1)"
        );
        assert!(found.mx.is_empty());

        let mut zone = Zone::new();
        a(&mut zone, "example.test", "127.0.0.1");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Unroutable);

        let mut zone = Zone::new();
        zone.add_txt("example.test", "v=spf1 -all");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Fail);
        assert_eq!(found.detail, "example.test has no MX record and no address");
    }

    #[test]
    fn impossible_names_and_address_literals_are_not_looked_up() {
        let zone = Zone::new();
        let found = block_on(check(&zone, "a..example.test"));
        assert_eq!(found.outcome, Outcome::Fail);
        assert_eq!(found.detail, "a..example.test is not a valid domain name");
        let long = format!("{}.example.test", "a".repeat(64));
        assert_eq!(block_on(check(&zone, &long)).outcome, Outcome::Fail);
        let found = block_on(check(&zone, "[192.0.2.1]"));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.detail,
            "[192.0.2.1] is an address literal: not checked"
        );
    }

    #[test]
    fn an_mx_answer_at_hand_is_not_asked_again() {
        // The zone has no MX for the domain: only the given answer is used.
        let mut zone = Zone::new();
        a(&mut zone, "mx.example.test", "192.0.2.25");
        let answer = Ok(vec![Mx {
            preference: 10,
            exchange: "mx.example.test".to_owned(),
        }]);
        let found = block_on(check_mx_answer(&zone, "example.test", answer));
        assert_eq!(found.outcome, Outcome::Pass);
        let found = block_on(check_mx_answer(
            &zone,
            "example.test",
            Err(LookupError::NxDomain),
        ));
        assert_eq!(found.outcome, Outcome::Fail);
    }

    #[test]
    fn duplicate_mx_hosts_are_looked_up_once() {
        let mut zone = Zone::new();
        mx(&mut zone, "example.test", 10, "MX.example.test");
        mx(&mut zone, "example.test", 20, "mx.example.test.");
        let found = block_on(check(&zone, "example.test"));
        assert_eq!(found.outcome, Outcome::Fail);
        assert_eq!(found.mx, ["MX.example.test"]);
    }
}
