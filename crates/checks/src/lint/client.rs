//! The sender's own hosts as receivers see them: check_host for each
//! `--ip` (RFC 7208 §4, through the real engine), PTR answers where `ptr`
//! or `%{p}` is used (§4.6.4), and for `--helo` the HELO identity (§2.3),
//! whether the name resolves to each address (the milter's helo-dns stage)
//! and each address's FCrDNS (the fcrdns stage, RFC 8601 §3).

use std::net::IpAddr;

use tollgate_dns::Lookup;
use tollgate_spf::{Options, Record, Spf, SpfOutput, SpfResult};

use super::{AddressResult, Code, FcrdnsResult, Findings, HeloReport, LintRequest};
use crate::Outcome;

/// Names of one MX or PTR answer a receiver looks at (RFC 7208 §4.6.4).
pub(crate) const MAX_ANSWER_NAMES: usize = 10;

fn spf<'a, L: Lookup>(lookup: &'a L, request: &LintRequest) -> Spf<&'a L> {
    Spf::new(
        lookup,
        Options {
            receiver: request.receiver.clone(),
            ..Options::default()
        },
    )
}

fn result(out: SpfOutput) -> AddressResult {
    AddressResult {
        ip: out.ip,
        result: out.result,
        mechanism: out.mechanism,
        domain: out.domain,
        problem: out.problem,
    }
}

/// How a result came about, for a message.
fn decided(r: &AddressResult) -> String {
    match (&r.mechanism, &r.problem) {
        (Some(m), _) => format!("matched \"{m}\" in the record at {}", r.domain),
        (None, Some(p)) => p.clone(),
        (None, None) => format!("no term of the record at {} matched", r.domain),
    }
}

/// check_host(ip, domain, postmaster@domain) for each address.
pub(crate) async fn addresses<L: Lookup>(
    lookup: &L,
    domain: &str,
    request: &LintRequest,
    out: &mut Findings,
) -> Vec<AddressResult> {
    let spf = spf(lookup, request);
    let sender = format!("postmaster@{domain}");
    let helo = request.helo.as_deref().unwrap_or(domain);
    let mut results = Vec::with_capacity(request.ips.len());
    for &ip in &request.ips {
        let r = result(spf.check_mailfrom(ip, &sender, helo).await);
        match r.result {
            SpfResult::Pass => {}
            SpfResult::TempError => out.add(
                Code::DnsError,
                ip.to_string(),
                format!(
                    "{ip} could not be checked against {domain}: {}",
                    decided(&r)
                ),
            ),
            other => out.add(
                Code::IpNotPermitted,
                ip.to_string(),
                format!("{ip} gets {other} from {domain}: {}", decided(&r)),
            ),
        }
        results.push(r);
    }
    results
}

/// PTR answers with more names than a receiver looks at.
pub(crate) async fn ptr_names<L: Lookup>(lookup: &L, ips: &[IpAddr], out: &mut Findings) {
    for &ip in ips {
        if let Ok(names) = lookup.lookup_ptr(ip).await
            && names.len() > MAX_ANSWER_NAMES
        {
            out.add(
                Code::TooManyPtrNames,
                ip.to_string(),
                format!(
                    "{ip} has {} PTR names; receivers evaluating ptr or %{{p}} look at only {MAX_ANSWER_NAMES}",
                    names.len()
                ),
            );
        }
    }
}

/// The HELO name's record, results, address and the addresses' FCrDNS.
pub(crate) async fn helo<L: Lookup>(
    lookup: &L,
    name: &str,
    request: &LintRequest,
    out: &mut Findings,
) -> HeloReport {
    let name = name.trim_end_matches('.');
    let mut failed = false;
    let record = match lookup.lookup_txt(name).await {
        Ok(texts) => texts.into_iter().find(|t| Record::is_spf1(t)),
        Err(e) if e.is_void() => None,
        Err(e) => {
            failed = true;
            out.add(
                Code::DnsError,
                name,
                format!("{} looking up TXT for HELO name {name}", e.summary()),
            );
            None
        }
    };
    if record.is_none() && !failed {
        out.add(
            Code::HeloNoRecord,
            name,
            format!("HELO name {name} publishes no SPF record: receivers that check HELO get none"),
        );
    }
    let spf = spf(lookup, request);
    let mut report = HeloReport {
        name: name.to_owned(),
        record,
        results: Vec::new(),
        resolves_to_ip: None,
        fcrdns: Vec::new(),
    };
    for &ip in &request.ips {
        let r = result(spf.check_helo(ip, name).await);
        match r.result {
            SpfResult::Fail | SpfResult::SoftFail => out.add(
                Code::HeloNotPermitted,
                ip.to_string(),
                format!(
                    "HELO {name}: {ip} gets {} from the HELO name's own record ({}); strict \
                     receivers refuse mail at HELO for this",
                    r.result,
                    decided(&r)
                ),
            ),
            SpfResult::PermError => out.add(
                Code::HeloSpfError,
                ip.to_string(),
                format!("HELO {name}: permerror for {ip}: {}", decided(&r)),
            ),
            SpfResult::TempError => out.add(
                Code::DnsError,
                ip.to_string(),
                format!("HELO {name}: {ip} could not be checked: {}", decided(&r)),
            ),
            _ => {}
        }
        report.results.push(r);

        let resolves = crate::helo::dns(lookup, name, ip).await;
        match resolves.outcome {
            Outcome::Pass => {}
            Outcome::TempError => out.add(Code::DnsError, name, resolves.detail),
            _ => out.add(Code::HeloNotResolving, ip.to_string(), resolves.detail),
        }
        let confirms = resolves.outcome == Outcome::Pass;
        report.resolves_to_ip = Some(report.resolves_to_ip.unwrap_or(true) && confirms);

        let fcrdns = crate::fcrdns::check(lookup, ip).await;
        match fcrdns.outcome {
            Outcome::Pass => {}
            Outcome::TempError => out.add(Code::DnsError, ip.to_string(), fcrdns.detail.clone()),
            _ => out.add(Code::FcrdnsFail, ip.to_string(), fcrdns.detail.clone()),
        }
        report.fcrdns.push(FcrdnsResult {
            ip,
            result: fcrdns.outcome,
            detail: fcrdns.detail,
        });
    }
    report
}
