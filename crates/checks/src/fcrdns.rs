//! Stage 2, `fcrdns`: forward-confirmed reverse DNS, the `iprev` method
//! of RFC 8601 §3: a PTR name of the client resolves back to the client
//! address. At most 10 PTR names are tried (as RFC 7208 §4.6.4 does for
//! the ptr mechanism).

use std::net::IpAddr;

use tollgate_dns::{Lookup, LookupError};

use crate::generic::generic_reason;
use crate::helo::addresses;
use crate::{Outcome, canonical};

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
}

/// Runs the fcrdns check for `ip`: the PTR lookup, the confirmation of
/// its names, and the description of what was found.
pub(crate) async fn check<L: Lookup>(lookup: &L, ip: IpAddr) -> Finding {
    let ip = canonical(ip);
    let mut info = FcrdnsInfo::new(ip);
    let names = match lookup.lookup_ptr(ip).await {
        Ok(names) => names,
        // RFC 8601 §3: no PTR data is a permerror of iprev.
        Err(e) if e.is_void() => {
            let detail = format!("reverse DNS of {ip} does not confirm: no PTR record");
            return Finding {
                outcome: Outcome::PermError,
                detail,
                info,
            };
        }
        Err(e) => {
            let detail = format!(
                "reverse DNS of {ip} could not be checked: {} looking up PTR",
                e.summary()
            );
            return Finding {
                outcome: Outcome::TempError,
                detail,
                info,
            };
        }
    };
    let confirmation = confirm(lookup, ip, &names).await;
    info.ptr_names = names;
    describe(ip, info, confirmation)
}

/// What the forward lookups of the PTR names showed.
#[derive(Debug)]
struct Confirmation {
    /// The first name that resolves back to the client.
    confirmed: Option<String>,
    /// The first name whose lookup failed temporarily.
    temporary: Option<(String, LookupError)>,
    /// The first name that did not resolve back, and what it resolved to.
    first_miss: Option<(String, Result<Vec<IpAddr>, LookupError>)>,
}

/// Looks up at most [`MAX_PTR_NAMES`] names until one resolves back to `ip`.
async fn confirm<L: Lookup>(lookup: &L, ip: IpAddr, names: &[String]) -> Confirmation {
    let mut found = Confirmation {
        confirmed: None,
        temporary: None,
        first_miss: None,
    };
    for name in names.iter().take(MAX_PTR_NAMES) {
        let answer = addresses(lookup, name, ip.is_ipv4()).await;
        match &answer {
            Ok(addrs) if addrs.contains(&ip) => {
                found.confirmed = Some(name.clone());
                return found;
            }
            Err(e) if e.is_temporary() && found.temporary.is_none() => {
                found.temporary = Some((name.clone(), e.clone()));
            }
            _ => {}
        }
        if found.first_miss.is_none() {
            found.first_miss = Some((name.clone(), answer));
        }
    }
    found
}

/// The finding, in words an administrator can act on.
fn describe(ip: IpAddr, mut info: FcrdnsInfo, found: Confirmation) -> Finding {
    if let Some(name) = found.confirmed {
        info.generic = generic_reason(&name, ip);
        let note = info
            .generic
            .as_ref()
            .map(|g| format!(" ({g})"))
            .unwrap_or_default();
        let detail = format!("reverse DNS of {ip} is {name}, which resolves back{note}");
        info.confirmed = Some(name);
        return Finding {
            outcome: Outcome::Pass,
            detail,
            info,
        };
    }
    if let Some(first) = info.ptr_names.first() {
        info.generic = generic_reason(first, ip);
    }
    if let Some((name, e)) = found.temporary {
        let detail = format!(
            "reverse DNS of {ip} could not be checked: {} looking up {name}",
            e.summary()
        );
        return Finding {
            outcome: Outcome::TempError,
            detail,
            info,
        };
    }
    let family = if ip.is_ipv4() { "A" } else { "AAAA" };
    let why = match found.first_miss {
        Some((name, Ok(addrs))) => {
            let shown: Vec<String> = addrs.iter().take(3).map(ToString::to_string).collect();
            format!("PTR {name} resolves to {}, not {ip}", shown.join(", "))
        }
        Some((name, Err(_))) => format!("PTR {name} has no {family} record pointing back"),
        None => "the PTR answer names no host".to_owned(),
    };
    let others = info.ptr_names.len().min(MAX_PTR_NAMES).saturating_sub(1);
    let more = if others > 0 {
        format!(" (nor do the other {others} PTR names)")
    } else {
        String::new()
    };
    let detail = format!("reverse DNS of {ip} does not confirm: {why}{more}");
    Finding {
        outcome: Outcome::Fail,
        detail,
        info,
    }
}
