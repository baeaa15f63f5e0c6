//! Stage 2, `fcrdns`: forward-confirmed reverse DNS, the `iprev` method
//! of RFC 8601 §3: a PTR name of the client resolves back to the client
//! address. At most 10 PTR names are tried (as RFC 7208 §4.6.4 does for
//! the ptr mechanism).

use std::net::IpAddr;

use tollgate_dns::{Lookup, LookupError};

use crate::Outcome;
use crate::generic::generic_reason;
use crate::helo::addresses;
use crate::skip::canonical;

/// How many names of a PTR answer are tried.
pub const MAX_PTR_NAMES: usize = 10;

/// What the fcrdns stage found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcrdnsInfo {
    /// The client address checked.
    pub ip: IpAddr,
    /// The PTR names of the client, as answered.
    pub ptr_names: Vec<String>,
    /// The first name that resolves back to the client.
    pub confirmed: Option<String>,
    /// Why the confirmed (or first) name looks like an end-user pool name.
    pub generic: Option<String>,
}

impl FcrdnsInfo {
    fn new(ip: IpAddr) -> Self {
        FcrdnsInfo {
            ip,
            ptr_names: Vec::new(),
            confirmed: None,
            generic: None,
        }
    }
}

/// The stage's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub outcome: Outcome,
    pub detail: String,
    pub info: FcrdnsInfo,
    pub queries: u32,
}

/// Runs the fcrdns check for `ip`.
pub(crate) async fn check<L: Lookup>(lookup: &L, ip: IpAddr) -> Finding {
    let ip = canonical(ip);
    let mut queries = 1;
    let names = match lookup.lookup_ptr(ip).await {
        Ok(names) => names,
        Err(e) if e.is_void() => {
            // RFC 8601 §3: no PTR data is a permerror of iprev.
            return Finding {
                outcome: Outcome::PermError,
                detail: format!("reverse DNS of {ip} does not confirm: no PTR record"),
                info: FcrdnsInfo::new(ip),
                queries,
            };
        }
        Err(e) => {
            return Finding {
                outcome: Outcome::TempError,
                detail: format!(
                    "reverse DNS of {ip} could not be checked: {} looking up PTR",
                    e.summary()
                ),
                info: FcrdnsInfo::new(ip),
                queries,
            };
        }
    };
    let mut info = FcrdnsInfo {
        ptr_names: names.clone(),
        ..FcrdnsInfo::new(ip)
    };
    let mut temporary: Option<(String, LookupError)> = None;
    // For the detail of a failure: what the first name resolved to.
    let mut first_miss: Option<(String, Result<Vec<IpAddr>, LookupError>)> = None;
    for name in names.iter().take(MAX_PTR_NAMES) {
        queries += 1;
        let answer = addresses(lookup, name, ip.is_ipv4()).await;
        match &answer {
            Ok(addrs) if addrs.contains(&ip) => {
                info.generic = generic_reason(name, ip);
                info.confirmed = Some(name.clone());
                let note = info
                    .generic
                    .as_ref()
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default();
                return Finding {
                    outcome: Outcome::Pass,
                    detail: format!("reverse DNS of {ip} is {name}, which resolves back{note}"),
                    info,
                    queries,
                };
            }
            Err(e) if e.is_temporary() && temporary.is_none() => {
                temporary = Some((name.clone(), e.clone()));
            }
            _ => {}
        }
        if first_miss.is_none() {
            first_miss = Some((name.clone(), answer));
        }
    }
    if let Some(first) = names.first() {
        info.generic = generic_reason(first, ip);
    }
    if let Some((name, e)) = temporary {
        return Finding {
            outcome: Outcome::TempError,
            detail: format!(
                "reverse DNS of {ip} could not be checked: {} looking up {name}",
                e.summary()
            ),
            info,
            queries,
        };
    }
    let family = if ip.is_ipv4() { "A" } else { "AAAA" };
    let why = match first_miss {
        Some((name, Ok(addrs))) => {
            let shown: Vec<String> = addrs.iter().take(3).map(ToString::to_string).collect();
            format!("PTR {name} resolves to {}, not {ip}", shown.join(", "))
        }
        Some((name, Err(_))) => format!("PTR {name} has no {family} record pointing back"),
        None => "the PTR answer names no host".to_owned(),
    };
    let more = if names.len() > 1 {
        format!(
            " (nor do the other {} PTR names)",
            names.len().min(MAX_PTR_NAMES) - 1
        )
    } else {
        String::new()
    };
    Finding {
        outcome: Outcome::Fail,
        detail: format!("reverse DNS of {ip} does not confirm: {why}{more}"),
        info,
        queries,
    }
}
