//! `dnsbl:`: the DNS block and allow lists (RFC 5782), validated into
//! `tollgate_checks::DnsList`s.

use std::net::Ipv4Addr;

use tollgate_checks::{DnsList, ListKind};

use super::ConfigError;
use super::raw::RawDnsbl;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn dnsbl(&self, raw: RawDnsbl) -> Result<Vec<DnsList>, ConfigError> {
        raw.lists
            .into_iter()
            .enumerate()
            .map(|(i, list)| {
                let key = |field: &str| format!("dnsbl.lists[{i}].{field}");
                let zone = list.zone.trim().trim_end_matches('.').to_ascii_lowercase();
                if !is_domain_name(&zone) {
                    return Err(self.error(
                        &key("zone"),
                        format!("{:?} is not a DNS zone name", list.zone),
                    ));
                }
                let kind = match list.kind.as_deref() {
                    None | Some("block") => ListKind::Block,
                    Some("allow") => ListKind::Allow,
                    Some(other) => {
                        return Err(
                            self.error(&key("type"), format!("{other:?} is not block or allow"))
                        );
                    }
                };
                let codes = match list.codes {
                    None => None,
                    Some(codes) if codes.is_empty() => {
                        return Err(self.error(
                            &key("codes"),
                            "is empty: leave it out for the default (any 127.0.0.0/8 answer)",
                        ));
                    }
                    Some(codes) => Some(
                        codes
                            .iter()
                            .map(|c| code(c).map_err(|e| self.error(&key("codes"), e)))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                Ok(DnsList { zone, kind, codes })
            })
            .collect()
    }
}

/// One listing answer: an address in 127.0.0.0/8 (RFC 5782 §2.1), never
/// one of the 127.255.255.0/24 answers list operators give for refused
/// queries (those must not list anyone).
fn code(text: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address like 127.0.0.2"))?;
    let [a, b, c, _] = ip.octets();
    if a != 127 {
        return Err(format!(
            "{ip} is not in 127.0.0.0/8, where lists answer (RFC 5782)"
        ));
    }
    if (b, c) == (255, 255) {
        return Err(format!(
            "{ip} is an error answer (127.255.255.0/24: query refused), never a listing"
        ));
    }
    Ok(ip)
}

/// A DNS name: dot-separated labels of letters, digits, hyphens and
/// underscores, each 1–63 octets, at most 253 in all, at least two labels.
pub(super) fn is_domain_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
