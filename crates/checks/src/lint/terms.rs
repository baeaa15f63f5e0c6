//! What one parsed record says, term by term, without asking DNS: `ptr`
//! (RFC 7208 §5.5), `all` and what follows it (§5.1), `redirect` beside
//! `all` (§6.1), networks (§5.6), `%{p}` (§7.3), repeated terms, and a
//! second version tag.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use tollgate_spf::macros::Letter;
use tollgate_spf::{Mechanism, Qualifier, Record};

use super::{Code, Findings};

/// How a record is reached in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The domain's own record.
    Root,
    /// Reached through `include:`: its result only matters if it is pass.
    Include,
    /// Reached through `redirect=`: it stands for the record that redirects.
    Redirect,
}

/// Checks one record of `domain`.
pub(crate) fn check(record: &Record, domain: &str, role: Role, out: &mut Findings) {
    let in_record = format!("in the record at {domain}");
    for d in &record.directives {
        match &d.mechanism {
            Mechanism::Ptr(_) => out.add(
                Code::PtrMechanism,
                &d.text,
                format!(
                    "\"{}\" {in_record}: RFC 7208 says ptr SHOULD NOT be used",
                    d.text
                ),
            ),
            Mechanism::All if d.qualifier == Qualifier::Pass => out.add(
                Code::PassAll,
                &d.text,
                format!("\"{}\" {in_record} lets every address pass", d.text),
            ),
            _ => {}
        }
    }
    let all = record
        .directives
        .iter()
        .position(|d| d.mechanism == Mechanism::All);
    if let Some(i) = all {
        let after = &record.directives[i + 1..];
        if let Some(first) = after.first() {
            out.add(
                Code::UnreachableTerms,
                &first.text,
                format!(
                    "{} term(s) after \"{}\" {in_record} can never match, starting with \"{}\"",
                    after.len(),
                    record.directives[i].text,
                    first.text
                ),
            );
        }
        if let Some(redirect) = &record.redirect {
            out.add(
                Code::RedirectWithAll,
                format!("redirect={redirect}"),
                format!(
                    "redirect={redirect} {in_record} is never used: \"{}\" always matches first",
                    record.directives[i].text
                ),
            );
        }
    } else if record.redirect.is_none() && role != Role::Include {
        out.add(
            Code::NoAll,
            domain,
            format!(
                "the record at {domain} has neither \"all\" nor \"redirect=\": every \
                 address it does not list gets neutral"
            ),
        );
    }
    for (name, value) in &record.unknown {
        if name.eq_ignore_ascii_case("v") && value.as_str().eq_ignore_ascii_case("spf1") {
            out.add(
                Code::VersionMisplaced,
                format!("{name}={value}"),
                format!(
                    "\"{name}={value}\" appears again inside the record at {domain}: two \
                     records were probably merged into one"
                ),
            );
        }
    }
    networks(record, &in_record, out);
    duplicates(record, &in_record, out);
    ptr_macros(record, &in_record, out);
}

/// ip4/ip6 with host bits set, duplicates, and networks inside others.
fn networks(record: &Record, in_record: &str, out: &mut Findings) {
    let mut nets: Vec<(IpNet, &str)> = Vec::new();
    for d in &record.directives {
        let (addr, len) = match d.mechanism {
            Mechanism::Ip4(a, len) => (IpAddr::V4(a), len),
            Mechanism::Ip6(a, len) => (IpAddr::V6(a), len),
            _ => continue,
        };
        let Ok(net) = IpNet::new(addr, len) else {
            continue;
        };
        if net.network() != addr {
            out.add(
                Code::HostBitsSet,
                &d.text,
                format!(
                    "\"{}\" {in_record} has bits set after /{len}; it means {}",
                    d.text,
                    net.trunc()
                ),
            );
        }
        nets.push((net.trunc(), &d.text));
    }
    // Sorted by address, then shorter prefix first: CIDR blocks nest or are
    // disjoint, so the last block not inside another covers all that follow
    // inside it.
    nets.sort_by_key(|(net, _)| (net.network(), net.prefix_len()));
    let mut cover: Option<(IpNet, &str)> = None;
    for (net, text) in nets {
        match cover {
            Some((outer, outer_text)) if outer.contains(&net) => {
                let (code, how) = if outer == net {
                    (Code::DuplicateNetwork, "repeats")
                } else {
                    (Code::OverlappingNetwork, "lies inside")
                };
                out.add(
                    code,
                    text,
                    format!("\"{text}\" {in_record} {how} \"{outer_text}\""),
                );
            }
            _ => cover = Some((net, text)),
        }
    }
}

/// The same DNS-querying term twice.
fn duplicates(record: &Record, in_record: &str, out: &mut Findings) {
    let mut seen = HashSet::new();
    for d in record
        .directives
        .iter()
        .filter(|d| d.mechanism.queries_dns())
    {
        let key = d
            .text
            .trim_start_matches(['+', '-', '~', '?'])
            .to_ascii_lowercase();
        if !seen.insert(key) {
            out.add(
                Code::DuplicateTerm,
                &d.text,
                format!("\"{}\" appears twice {in_record}", d.text),
            );
        }
    }
}

/// Domain-specs that use `%{p}`.
fn ptr_macros(record: &Record, in_record: &str, out: &mut Findings) {
    let mut specs = Vec::new();
    for d in &record.directives {
        let spec = match &d.mechanism {
            Mechanism::Include(s) | Mechanism::Exists(s) => Some(s),
            Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } => domain.as_ref(),
            Mechanism::Ptr(s) => s.as_ref(),
            _ => None,
        };
        if let Some(spec) = spec {
            specs.push((d.text.clone(), spec));
        }
    }
    let redirect = record
        .redirect
        .as_ref()
        .map(|r| (format!("redirect={r}"), r));
    let exp = record.exp.as_ref().map(|e| (format!("exp={e}"), e));
    for (text, spec) in specs.into_iter().chain(redirect).chain(exp) {
        if spec.uses(Letter::ValidatedName) {
            out.add(
                Code::PtrMacro,
                &text,
                format!(
                    "\"{text}\" {in_record} uses %{{p}}, which needs a reverse lookup of the client"
                ),
            );
        }
    }
}

/// Whether a record uses the client's validated name (`ptr` or `%{p}`).
pub(crate) fn uses_ptr(record: &Record) -> bool {
    record.directives.iter().any(|d| match &d.mechanism {
        Mechanism::Ptr(_) => true,
        Mechanism::Include(s) | Mechanism::Exists(s) => s.uses(Letter::ValidatedName),
        Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } => domain
            .as_ref()
            .is_some_and(|s| s.uses(Letter::ValidatedName)),
        _ => false,
    }) || record
        .redirect
        .as_ref()
        .is_some_and(|r| r.uses(Letter::ValidatedName))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str, role: Role) -> Vec<Code> {
        let mut out = Findings::default();
        check(&Record::parse(text).unwrap(), "example.com", role, &mut out);
        let mut codes: Vec<Code> = out.finish().into_iter().map(|f| f.code).collect();
        codes.sort();
        codes.dedup();
        codes
    }

    #[test]
    fn a_clean_record_has_no_findings() {
        assert!(
            codes(
                "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 mx -all",
                Role::Root
            )
            .is_empty()
        );
        // An included record needs no all.
        assert!(codes("v=spf1 ip4:192.0.2.0/24", Role::Include).is_empty());
    }

    #[test]
    fn each_shape_gets_its_code() {
        assert_eq!(
            codes("v=spf1 ptr -all", Role::Root),
            vec![Code::PtrMechanism]
        );
        assert_eq!(codes("v=spf1 all", Role::Root), vec![Code::PassAll]);
        assert_eq!(codes("v=spf1 +all", Role::Include), vec![Code::PassAll]);
        assert_eq!(codes("v=spf1 mx", Role::Root), vec![Code::NoAll]);
        assert_eq!(codes("v=spf1 mx", Role::Redirect), vec![Code::NoAll]);
        assert_eq!(
            codes("v=spf1 -all redirect=_spf.example.net", Role::Root),
            vec![Code::RedirectWithAll]
        );
        assert_eq!(
            codes("v=spf1 ~all mx", Role::Root),
            vec![Code::UnreachableTerms]
        );
        assert_eq!(
            codes("v=spf1 ip4:192.0.2.1/24 -all", Role::Root),
            vec![Code::HostBitsSet]
        );
        assert_eq!(
            codes("v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.0/24 -all", Role::Root),
            vec![Code::DuplicateNetwork]
        );
        assert_eq!(
            codes(
                "v=spf1 ip6:2001:db8::/32 ip6:2001:db8:1::/48 -all",
                Role::Root
            ),
            vec![Code::OverlappingNetwork]
        );
        assert_eq!(
            codes("v=spf1 mx mx -all", Role::Root),
            vec![Code::DuplicateTerm]
        );
        assert_eq!(
            codes("v=spf1 exists:%{p}.example.net -all", Role::Root),
            vec![Code::PtrMacro]
        );
        assert_eq!(
            codes("v=spf1 mx -all v=spf1", Role::Root),
            vec![Code::VersionMisplaced]
        );
    }

    #[test]
    fn nested_networks_are_found_past_a_disjoint_one() {
        let found = codes(
            "v=spf1 ip4:10.0.0.0/8 ip4:10.1.0.0/16 ip4:10.2.0.0/16 ip4:10.2.3.0/24 -all",
            Role::Root,
        );
        assert_eq!(found, vec![Code::OverlappingNetwork]);
        let mut out = Findings::default();
        check(
            &Record::parse(
                "v=spf1 ip4:10.0.0.0/8 ip4:10.1.0.0/16 ip4:10.2.0.0/16 ip4:10.2.3.0/24 -all",
            )
            .unwrap(),
            "example.com",
            Role::Root,
            &mut out,
        );
        assert_eq!(out.finish().len(), 3);
    }
}
