//! The sender's own hosts as receivers see them: check_host for each
//! `--ip` (RFC 7208 §4, through the real engine), PTR answers where `ptr`
//! or `%{p}` is used (§4.6.4), and for `--helo` the form of the name (a
//! domain name or an address literal, RFC 5321 §4.1.1.1), the HELO identity (§2.3),
//! whether the name resolves to each address (the milter's helo-dns stage)
//! and each address's FCrDNS (the fcrdns stage, RFC 8601 §3).

use std::net::IpAddr;

use tollgate_dns::Lookup;
use tollgate_spf::{Options, Record, Spf, SpfOutput, SpfResult};

use super::{AddressResult, Code, FcrdnsResult, Findings, HeloReport, LintRequest};
use crate::{Outcome, canonical};

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

/// What kind of HELO argument a name is (RFC 5321 §4.1.1.1): a domain
/// name, an address literal, or neither.
enum HeloForm {
    Name,
    Literal(IpAddr),
    Invalid(String),
}

impl HeloForm {
    fn of(name: &str) -> HeloForm {
        match crate::helo::address_literal(name) {
            Some(Ok(addr)) => HeloForm::Literal(canonical(addr)),
            Some(Err(())) => HeloForm::Invalid("is not a valid address literal".to_owned()),
            None if name.parse::<IpAddr>().is_ok() => HeloForm::Invalid(format!(
                "is a bare IP address, neither a domain name nor an address literal like [{name}]"
            )),
            None if !crate::helo::is_fqdn(name) => HeloForm::Invalid(
                "is neither a fully qualified domain name nor an address literal".to_owned(),
            ),
            None => HeloForm::Name,
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
    let form = HeloForm::of(name);
    let record = match &form {
        HeloForm::Name => helo_record(lookup, name, out).await,
        HeloForm::Literal(_) => {
            out.add(
                Code::HeloAddressLiteral,
                name,
                format!(
                    "HELO {name} is an address literal: receivers that check the HELO identity \
                     get SPF none (there is no name to look up), and some refuse address \
                     literals from hosts that could have a name"
                ),
            );
            None
        }
        HeloForm::Invalid(why) => {
            out.add(
                Code::HeloNotFqdn,
                name,
                format!(
                    "HELO {name} {why}: receivers that check HELO syntax refuse it (tollgate's \
                     helo-syntax stage does by default), and no SPF record can be checked for it"
                ),
            );
            None
        }
    };
    let spf = spf(lookup, request);
    let mut report = HeloReport {
        name: name.to_owned(),
        record,
        results: Vec::new(),
        resolves_to_ip: None,
        fcrdns: Vec::new(),
    };
    for &ip in &request.ips {
        // For a literal or an invalid name the engine gives none without
        // asking DNS (RFC 7208 §4.3); the result is kept for the report.
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

        let confirms = match &form {
            HeloForm::Name => {
                let resolves = crate::helo::dns(lookup, name, ip).await;
                match resolves.outcome {
                    Outcome::Pass => {}
                    Outcome::TempError => out.add(Code::DnsError, name, resolves.detail),
                    _ => out.add(Code::HeloNotResolving, ip.to_string(), resolves.detail),
                }
                resolves.outcome == Outcome::Pass
            }
            HeloForm::Literal(addr) => {
                let same = *addr == canonical(ip);
                if !same {
                    out.add(
                        Code::HeloAddressLiteral,
                        ip.to_string(),
                        format!(
                            "HELO {name} is not the address {ip} sends from: receivers that \
                             compare an address literal with the client refuse the mail as forged"
                        ),
                    );
                }
                same
            }
            HeloForm::Invalid(_) => false,
        };
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

/// The HELO name's own SPF record; none is a finding.
async fn helo_record<L: Lookup>(lookup: &L, name: &str, out: &mut Findings) -> Option<String> {
    match lookup.lookup_txt(name).await {
        Ok(texts) => {
            let record = texts.into_iter().find(|t| Record::is_spf1(t));
            if record.is_none() {
                helo_no_record(name, out);
            }
            record
        }
        Err(e) if e.is_void() => {
            helo_no_record(name, out);
            None
        }
        Err(e) => {
            out.add(
                Code::DnsError,
                name,
                format!("{} looking up TXT for HELO name {name}", e.summary()),
            );
            None
        }
    }
}

fn helo_no_record(name: &str, out: &mut Findings) {
    out.add(
        Code::HeloNoRecord,
        name,
        format!("HELO name {name} publishes no SPF record: receivers that check HELO get none"),
    );
}
