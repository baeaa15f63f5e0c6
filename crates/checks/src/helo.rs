//! Stages 1 and 3: `helo-syntax` (no DNS) and `helo-dns`.
//!
//! RFC 5321 §4.1.1.1 and §4.1.3: the HELO/EHLO argument is the client's
//! fully qualified domain name or, failing that, an address literal
//! (`[192.0.2.1]`, `[IPv6:2001:db8::1]`). §4.1.4: a HELO that does not
//! resolve to the client must not by itself cause a reject; helo-dns
//! records it as `mismatch`.

use std::net::IpAddr;

use tollgate_dns::{Lookup, LookupError};

use crate::names::find_name;
use crate::{Enhanced, Outcome, canonical};

/// A finding of the helo-syntax stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxFinding {
    pub outcome: Outcome,
    pub detail: String,
    /// The RFC 3463 enhanced code a refusal uses.
    pub enhanced: Enhanced,
}

impl SyntaxFinding {
    fn pass(detail: String) -> Self {
        SyntaxFinding {
            outcome: Outcome::Pass,
            detail,
            enhanced: Enhanced::NOT_AUTHORIZED,
        }
    }

    fn syntax(detail: String) -> Self {
        SyntaxFinding {
            outcome: Outcome::Fail,
            detail,
            enhanced: Enhanced::SYNTAX,
        }
    }

    fn forged(detail: String) -> Self {
        SyntaxFinding {
            outcome: Outcome::Fail,
            detail,
            enhanced: Enhanced::NOT_AUTHORIZED,
        }
    }
}

/// A HELO argument shown safely in replies and logs: printable ASCII,
/// at most 80 characters, quoted.
pub(crate) fn shown(helo: &str) -> String {
    let mut out: String = helo
        .chars()
        .map(|c| {
            if matches!(c, ' '..='~') && c != '"' {
                c
            } else {
                '?'
            }
        })
        .take(80)
        .collect();
    if helo.chars().count() > 80 {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

/// Parses an address literal (RFC 5321 §4.1.3) if `helo` is one.
pub(crate) fn address_literal(helo: &str) -> Option<Result<IpAddr, ()>> {
    let inner = helo.strip_prefix('[')?.strip_suffix(']');
    let Some(inner) = inner else {
        return Some(Err(()));
    };
    let parsed = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().map(IpAddr::V6)
        }
        _ => inner.parse::<std::net::Ipv4Addr>().map(IpAddr::V4),
    };
    Some(parsed.map_err(|_| ()))
}

/// Whether `name` is a syntactically valid FQDN (RFC 1035 §2.3.1
/// letters, digits and hyphens; at least two labels; a non-numeric top
/// label). A single trailing dot is allowed.
pub(crate) fn is_fqdn(name: &str) -> bool {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = bare.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !labels
            .last()
            .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
}

/// The helo-syntax stage.
pub(crate) fn syntax(
    helo: &str,
    client: IpAddr,
    local_names: &[String],
    refused: &[String],
) -> SyntaxFinding {
    let client = canonical(client);
    let show = shown(helo);
    if helo.is_empty() {
        return SyntaxFinding::syntax("HELO is empty".to_owned());
    }
    if let Some(literal) = address_literal(helo) {
        return match literal {
            Err(()) => SyntaxFinding::syntax(format!("HELO {show} is not a valid address literal")),
            Ok(addr) if canonical(addr) == client => {
                SyntaxFinding::pass(format!("HELO {show} is an address literal of the client"))
            }
            Ok(_) => SyntaxFinding::forged(format!(
                "HELO {show} does not match the client address {client}"
            )),
        };
    }
    if let Ok(addr) = helo.parse::<IpAddr>() {
        return SyntaxFinding::syntax(format!(
            "HELO {show} is a bare IP address, not an address literal like [{addr}]"
        ));
    }
    let lower = helo.strip_suffix('.').unwrap_or(helo).to_ascii_lowercase();
    if lower == "localhost" || lower.starts_with("localhost.") {
        if client.is_loopback() {
            return SyntaxFinding::pass(format!("HELO {show} from a loopback client"));
        }
        if is_fqdn(helo) {
            return SyntaxFinding::forged(format!(
                "HELO {show} claims to be localhost but the client is {client}"
            ));
        }
    }
    if !is_fqdn(helo) {
        return SyntaxFinding::syntax(format!(
            "HELO {show} is not a fully qualified domain name or address literal"
        ));
    }
    if find_name(local_names, helo).is_some() {
        return SyntaxFinding::forged(format!("HELO {show} claims to be this host"));
    }
    if find_name(refused, helo).is_some() {
        return SyntaxFinding::forged(format!("HELO {show} is on the list of refused HELO names"));
    }
    SyntaxFinding::pass(format!("HELO {show} is a fully qualified domain name"))
}

/// What helo-dns found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DnsFinding {
    pub outcome: Outcome,
    pub detail: String,
}

/// The helo-dns stage: does the HELO name resolve, and to the client?
pub(crate) async fn dns<L: Lookup>(lookup: &L, helo: &str, client: IpAddr) -> DnsFinding {
    let client = canonical(client);
    let show = shown(helo);
    if address_literal(helo).is_some() || !is_fqdn(helo) {
        return DnsFinding {
            outcome: Outcome::None,
            detail: format!("HELO {show} is not a domain name, nothing to resolve"),
        };
    }
    let name = helo.strip_suffix('.').unwrap_or(helo);
    // Ask for the client's family first; the other family only tells
    // "resolves elsewhere" apart from "does not resolve".
    let v4 = client.is_ipv4();
    let first = addresses(lookup, name, v4).await;
    let addrs = match first {
        Ok(addrs) if addrs.contains(&client) => {
            return DnsFinding {
                outcome: Outcome::Pass,
                detail: format!("HELO {name} resolves to the client address {client}"),
            };
        }
        Ok(addrs) => addrs,
        Err(LookupError::NxDomain) => {
            return DnsFinding {
                outcome: Outcome::Fail,
                detail: format!("HELO {name} does not exist (NXDOMAIN)"),
            };
        }
        Err(e) if e.is_void() => match addresses(lookup, name, !v4).await {
            Ok(other) => other,
            Err(e) if e.is_void() => {
                return DnsFinding {
                    outcome: Outcome::Fail,
                    detail: format!("HELO {name} has no address records"),
                };
            }
            Err(e) => return temperror(name, &e),
        },
        Err(e) => return temperror(name, &e),
    };
    let list: Vec<String> = addrs.iter().take(4).map(ToString::to_string).collect();
    let more = if addrs.len() > 4 { ", ..." } else { "" };
    DnsFinding {
        outcome: Outcome::Mismatch,
        detail: format!(
            "HELO {name} resolves to {}{more}, not to the client address {client}",
            list.join(", ")
        ),
    }
}

fn temperror(name: &str, e: &LookupError) -> DnsFinding {
    DnsFinding {
        outcome: Outcome::TempError,
        detail: format!("HELO {name} could not be resolved: {}", e.summary()),
    }
}

/// The A (`v4`) or AAAA records of `name` as addresses.
pub(crate) async fn addresses<L: Lookup>(
    lookup: &L,
    name: &str,
    v4: bool,
) -> Result<Vec<IpAddr>, LookupError> {
    if v4 {
        Ok(lookup
            .lookup_a(name)
            .await?
            .into_iter()
            .map(IpAddr::V4)
            .collect())
    } else {
        Ok(lookup
            .lookup_aaaa(name)
            .await?
            .into_iter()
            .map(IpAddr::V6)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(helo: &str, client: &str) -> SyntaxFinding {
        syntax(
            helo,
            client.parse().unwrap(),
            &["mx.example.org".to_owned()],
            &[
                "friend".to_owned(),
                "bad.example.net".to_owned(),
                ".hostile.test".to_owned(),
            ],
        )
    }

    #[test]
    fn refused_helo_with_leading_dot_refuses_every_name_under_it() {
        // Regression: `helo.refused: [".hostile.test"]` let mail.hostile.test through.
        let f = check("mail.hostile.test", "192.0.2.7");
        assert_eq!(f.outcome, Outcome::Fail);
        assert!(f.detail.contains("refused"), "{}", f.detail);
        assert_eq!(check("hostile.test", "192.0.2.7").outcome, Outcome::Pass);
        let local = syntax(
            "a.mx.example.org",
            "192.0.2.7".parse().unwrap(),
            &[".mx.example.org".to_owned()],
            &[],
        );
        assert!(
            local.detail.contains("claims to be this host"),
            "{}",
            local.detail
        );
    }

    #[test]
    fn fqdn_and_matching_literals_pass() {
        assert_eq!(
            check("mail.example.com", "192.0.2.7").outcome,
            Outcome::Pass
        );
        assert_eq!(
            check("mail.example.com.", "192.0.2.7").outcome,
            Outcome::Pass
        );
        assert_eq!(check("[192.0.2.7]", "192.0.2.7").outcome, Outcome::Pass);
        assert_eq!(
            check("[IPv6:2001:db8::1]", "2001:db8::1").outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn bare_words_and_bare_addresses_fail_with_syntax_code() {
        assert_eq!(check("localhost", "127.0.0.1").outcome, Outcome::Pass);
        let f = check("localhost", "192.0.2.7");
        assert_eq!(f.outcome, Outcome::Fail);
        assert_eq!(f.enhanced.with_class(5), "5.5.2");
        assert_eq!(
            f.detail,
            "HELO \"localhost\" is not a fully qualified domain name or address literal"
        );
        let f = check("192.0.2.7", "192.0.2.7");
        assert_eq!(f.outcome, Outcome::Fail);
        assert!(f.detail.contains("bare IP address"), "{}", f.detail);
        assert_eq!(check("OEMCOMPUTER", "192.0.2.7").outcome, Outcome::Fail);
        assert_eq!(check("exa mple.com", "192.0.2.7").outcome, Outcome::Fail);
    }

    #[test]
    fn forged_claims_fail_with_policy_code() {
        let f = check("[198.51.100.1]", "192.0.2.7");
        assert_eq!(
            (f.outcome, f.enhanced.with_class(5).as_str()),
            (Outcome::Fail, "5.7.1")
        );
        assert_eq!(
            f.detail,
            "HELO \"[198.51.100.1]\" does not match the client address 192.0.2.7"
        );
        assert_eq!(
            check("MX.example.org", "192.0.2.7").enhanced.with_class(5),
            "5.7.1"
        );
        assert_eq!(
            check("localhost.localdomain", "192.0.2.7")
                .enhanced
                .with_class(5),
            "5.7.1"
        );
        assert_eq!(
            check("bad.example.net", "192.0.2.7").enhanced.with_class(5),
            "5.7.1"
        );
    }

    #[test]
    fn hostile_helo_is_shown_safely() {
        let long = "a".repeat(1000);
        let f = check(&long, "192.0.2.7");
        assert!(f.detail.len() < 200);
        let f = check("evil\r\n250 ok", "192.0.2.7");
        assert!(!f.detail.contains('\r') && !f.detail.contains('\n'));
    }
}
