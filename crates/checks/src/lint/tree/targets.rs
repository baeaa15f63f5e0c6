//! What the terms of a record name, as the walk sees them: the name a
//! domain-spec stands for when it does not depend on the message (RFC 7208
//! §7.3), the answers of `a`, `mx` and `exists` (void lookups and the MX
//! limit of §4.6.4), and the `exp=` name, which must hold exactly one TXT
//! record (§6.2).

use std::net::{IpAddr, Ipv4Addr};

use tollgate_dns::{Lookup, LookupError, TxtStrings};
use tollgate_spf::macros::{Letter, MacroContext, MacroString, MacroValues};

use super::Walker;
use crate::lint::Code;

/// What `a`, `mx` or `exists` found at a name.
#[derive(Clone, Debug)]
pub(super) enum Target {
    Found(usize),
    Void(LookupError),
    Failed(LookupError),
}

impl<L: Lookup + TxtStrings> Walker<'_, L> {
    pub(super) fn optional_target(
        &mut self,
        spec: Option<&MacroString>,
        domain: &str,
        term: &str,
    ) -> Option<String> {
        match spec {
            Some(spec) => self.target(spec, domain, term),
            None => Some(domain.to_owned()),
        }
    }

    /// The name a domain-spec stands for, if it does not depend on the
    /// message (only `%{d}` and `%{o}` are known without one).
    pub(super) fn target(
        &mut self,
        spec: &MacroString,
        domain: &str,
        term: &str,
    ) -> Option<String> {
        if depends_on_message(spec) {
            self.out.add(
                Code::MacroTarget,
                term,
                format!(
                    "\"{term}\" in the record at {domain} names a domain that depends on the \
                     sender or client; it was counted but not followed"
                ),
            );
            return None;
        }
        let sender = format!("postmaster@{}", self.root);
        let values = MacroValues {
            sender: &sender,
            local_part: "postmaster",
            sender_domain: &self.root,
            domain,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            helo: &self.root,
            validated_name: "unknown",
            receiver: "unknown",
            timestamp: 0,
        };
        let name = spec.expand_domain(&values);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        (!name.is_empty()).then_some(name)
    }

    /// Looks up what `a`, `mx` or `exists` names and reports void answers.
    pub(super) async fn check_target(&mut self, name: &str, kind: &'static str, term: &str) {
        let key = (name.to_owned(), kind);
        let found = match self.targets.get(&key) {
            Some(found) => found.clone(),
            None => {
                if !self.budget_left() {
                    return;
                }
                let found = self.query_target(name, kind).await;
                if let Target::Failed(e) = &found {
                    self.dns_errors += 1;
                    let qtype = match kind {
                        "mx" => "MX",
                        _ => "A",
                    };
                    self.out.add(
                        Code::DnsError,
                        term,
                        format!("{} looking up {qtype} for {name}", e.summary()),
                    );
                }
                self.targets.insert(key, found.clone());
                found
            }
        };
        match found {
            Target::Void(e) => {
                let what = match kind {
                    "mx" => "no MX records",
                    "a" => "no A or AAAA records",
                    _ => "no A records",
                };
                let why = match e {
                    LookupError::NxDomain => "does not exist".to_owned(),
                    _ => format!("has {what}"),
                };
                self.void(term, format!("\"{term}\": {name} {why}"));
            }
            Target::Found(n) if kind == "mx" && n > crate::lint::client::MAX_ANSWER_NAMES => {
                self.out.add(
                    Code::TooManyMxNames,
                    term,
                    format!(
                        "\"{term}\": {name} has {n} MX records, more than {}: receivers give permerror",
                        crate::lint::client::MAX_ANSWER_NAMES
                    ),
                );
            }
            _ => {}
        }
    }

    async fn query_target(&mut self, name: &str, kind: &'static str) -> Target {
        let classify = |r: Result<usize, LookupError>| match r {
            Ok(n) => Target::Found(n),
            Err(e) if e.is_void() => Target::Void(e),
            Err(e) => Target::Failed(e),
        };
        match kind {
            "mx" => classify(self.lookup.lookup_mx(name).await.map(|v| v.len())),
            "exists" => classify(self.lookup.lookup_a(name).await.map(|v| v.len())),
            _ => match classify(self.lookup.lookup_a(name).await.map(|v| v.len())) {
                Target::Void(v4) => {
                    match classify(self.lookup.lookup_aaaa(name).await.map(|v| v.len())) {
                        // NXDOMAIN for one family is NXDOMAIN for both.
                        Target::Void(_) => Target::Void(v4),
                        other => other,
                    }
                }
                other => other,
            },
        }
    }

    /// `exp=` must name exactly one TXT record (§6.2).
    pub(super) async fn exp(&mut self, spec: &MacroString, domain: &str) {
        let term = format!("exp={spec}");
        if depends_on_message(spec) {
            // exp= is looked up only after a fail and is no lookup of the
            // 10 (§4.6.4): nothing was counted.
            self.out.add(
                Code::MacroTarget,
                &term,
                format!(
                    "\"{term}\" in the record at {domain} names a domain that depends on the \
                     sender or client; it was not looked up (exp= is not one of the 10 lookups)"
                ),
            );
            return;
        }
        let Some(target) = self.target(spec, domain, &term) else {
            return;
        };
        let problem = match self.lookup.lookup_txt(&target).await {
            Ok(texts) if texts.len() == 1 => {
                if MacroString::parse(&texts[0], MacroContext::Explanation)
                    .is_ok_and(|m| m.uses(Letter::ValidatedName))
                {
                    self.out.add(
                        Code::PtrMacro,
                        &term,
                        format!("the explanation at {target} uses %{{p}}, which needs a reverse lookup of the client"),
                    );
                }
                return;
            }
            Ok(texts) => format!("{target} has {} TXT records", texts.len()),
            Err(e) if e.is_void() => format!("{target} {}", void_words(&e)),
            Err(e) => {
                self.dns_errors += 1;
                self.out.add(
                    Code::DnsError,
                    &term,
                    format!("{} looking up TXT for {target}", e.summary()),
                );
                return;
            }
        };
        self.out.add(
            Code::ExpNotOneTxt,
            &term,
            format!("\"{term}\" in the record at {domain}: {problem}; it must name exactly one"),
        );
    }
}

/// Whether a domain-spec depends on the message: only `%{d}` and `%{o}`
/// are known without one.
fn depends_on_message(spec: &MacroString) -> bool {
    const DYNAMIC: [Letter; 6] = [
        Letter::Sender,
        Letter::LocalPart,
        Letter::Ip,
        Letter::ValidatedName,
        Letter::IpVersion,
        Letter::Helo,
    ];
    DYNAMIC.iter().any(|l| spec.uses(*l))
}

pub(super) fn void_words(e: &LookupError) -> &'static str {
    match e {
        LookupError::NxDomain => "does not exist (NXDOMAIN)",
        _ => "has no TXT records",
    }
}
