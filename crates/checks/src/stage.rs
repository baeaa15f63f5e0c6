//! The vocabulary of the checks: [`Stage`] (the stable stage names),
//! [`Outcome`] (the results they produce) and [`StageReport`] (what one
//! stage found and what the policy makes of it).

use std::fmt;
use std::str::FromStr;

use tollgate_spf::{SpfOutput, SpfResult};

use crate::{Action, FcrdnsInfo, ListHit, Reply, SkipReason};

/// A stage, by the name the JSON output and the configuration use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Trusted networks, authenticated senders, listed HELO names and sender domains.
    Skip,
    /// HELO syntax and claims, without DNS.
    HeloSyntax,
    /// The client address on DNS block lists (or allow lists).
    Dnsbl,
    /// Forward-confirmed reverse DNS of the client.
    Fcrdns,
    /// Whether the confirmed reverse name is a real one, not a generic pool name.
    RdnsName,
    /// Whether the HELO name resolves, and to the client.
    HeloDns,
    /// SPF for the HELO identity.
    SpfHelo,
    /// Whether the MAIL FROM domain can receive mail (exists, no null MX,
    /// routable MX hosts).
    SenderDomain,
    /// SPF for the MAIL FROM identity.
    SpfMailfrom,
}

impl Stage {
    /// Every stage, cheapest first.
    pub const ALL: [Stage; 9] = [
        Stage::Skip,
        Stage::HeloSyntax,
        Stage::Dnsbl,
        Stage::Fcrdns,
        Stage::RdnsName,
        Stage::HeloDns,
        Stage::SpfHelo,
        Stage::SenderDomain,
        Stage::SpfMailfrom,
    ];

    /// The stable name: `skip`, `helo-syntax`, `dnsbl`, `fcrdns`,
    /// `rdns-name`, `helo-dns`, `spf-helo`, `sender-domain`, `spf-mailfrom`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Skip => "skip",
            Stage::HeloSyntax => "helo-syntax",
            Stage::Dnsbl => "dnsbl",
            Stage::Fcrdns => "fcrdns",
            Stage::RdnsName => "rdns-name",
            Stage::HeloDns => "helo-dns",
            Stage::SpfHelo => "spf-helo",
            Stage::SenderDomain => "sender-domain",
            Stage::SpfMailfrom => "spf-mailfrom",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("unknown stage {s:?}"))
    }
}

/// The result of a stage. SPF stages use the RFC 7208 keywords, `fcrdns`
/// the RFC 8601 iprev ones; `mismatch` is helo-dns's "resolves, but not to
/// the client", `skipped` is the skip stage's "on a list"; `listed` and
/// `allowed` are dnsbl's, `generic` rdns-name's, `nullmx` and
/// `unroutable` sender-domain's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The check succeeded.
    Pass,
    /// The check failed.
    Fail,
    /// SPF softfail.
    SoftFail,
    /// SPF neutral.
    Neutral,
    /// Nothing to check, or no policy published.
    None,
    /// A permanent error (broken SPF record; no PTR record for iprev).
    PermError,
    /// A temporary (DNS) error.
    TempError,
    /// helo-dns: the HELO name resolves, but not to the client.
    Mismatch,
    /// skip: the client or message is exempt from checks.
    Skipped,
    /// dnsbl: a block list lists the client.
    Listed,
    /// dnsbl: an allow list lists the client (exempt from later stages).
    Allowed,
    /// rdns-name: the confirmed name is a generic (end-user pool) name.
    Generic,
    /// sender-domain: the domain publishes a null MX (RFC 7505).
    NullMx,
    /// sender-domain: every MX host resolves only to addresses that are
    /// not routable on the internet (loopback, private, link-local, reserved).
    Unroutable,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 14] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::SoftFail,
        Outcome::Neutral,
        Outcome::None,
        Outcome::PermError,
        Outcome::TempError,
        Outcome::Mismatch,
        Outcome::Skipped,
        Outcome::Listed,
        Outcome::Allowed,
        Outcome::Generic,
        Outcome::NullMx,
        Outcome::Unroutable,
    ];

    /// The lower-case keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::PermError => "permerror",
            Outcome::TempError => "temperror",
            Outcome::Mismatch => "mismatch",
            Outcome::Skipped => "skipped",
            Outcome::Listed => "listed",
            Outcome::Allowed => "allowed",
            Outcome::Generic => "generic",
            Outcome::NullMx => "nullmx",
            Outcome::Unroutable => "unroutable",
        }
    }
}

impl From<SpfResult> for Outcome {
    fn from(r: SpfResult) -> Self {
        match r {
            SpfResult::Pass => Outcome::Pass,
            SpfResult::Fail => Outcome::Fail,
            SpfResult::SoftFail => Outcome::SoftFail,
            SpfResult::Neutral => Outcome::Neutral,
            SpfResult::None => Outcome::None,
            SpfResult::PermError => Outcome::PermError,
            SpfResult::TempError => Outcome::TempError,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown result {s:?}"))
    }
}

/// What one stage found, and what the policy makes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// Its result.
    pub outcome: Outcome,
    /// What was found, in words an administrator can act on.
    pub detail: String,
    /// The policy's action for this result.
    pub action: Action,
    /// The SMTP reply, when the action is reject or tempfail (for
    /// greylist: what a first attempt is told).
    pub reply: Option<Reply>,
    /// For the SPF stages: the engine's full output.
    pub spf: Option<SpfOutput>,
    /// For fcrdns: the PTR names and the confirmed one.
    pub fcrdns: Option<FcrdnsInfo>,
    /// DNS queries this stage made (answered from cache or not).
    pub dns_queries: u32,
    /// For skip: why.
    pub skip: Option<SkipReason>,
    /// For dnsbl: every list that answered for the client.
    pub lists: Vec<ListHit>,
    /// Facts found on the way that are not results (sender-domain's MX
    /// set), for `tollgate check` and the log.
    pub notes: Vec<String>,
}

impl StageReport {
    /// The report of the skip stage.
    pub fn skipped(reason: SkipReason) -> StageReport {
        StageReport {
            stage: Stage::Skip,
            outcome: Outcome::Skipped,
            detail: reason.to_string(),
            action: Action::Tag,
            reply: None,
            spf: None,
            fcrdns: None,
            dns_queries: 0,
            skip: Some(reason),
            lists: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether this report ends the evaluation (reject or tempfail).
    pub fn is_decisive(&self) -> bool {
        matches!(self.action, Action::Reject | Action::Tempfail)
    }

    /// Whether this report asks for greylisting (decided at RCPT).
    pub fn is_greylist(&self) -> bool {
        self.action == Action::Greylist
    }
}
