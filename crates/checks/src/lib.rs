//! tollgate's checks: the stages of the design, cheapest first, the policy
//! that maps each stage's result to an action, and the rendering of
//! `Received-SPF`, `Authentication-Results` and SMTP replies.
//!
//! | stage | DNS | establishes |
//! |---|---|---|
//! | `skip` | none | trusted network, authenticated sender, listed HELO or sender domain |
//! | `helo-syntax` | none | HELO is an FQDN or a matching address literal, and not us |
//! | `fcrdns` | PTR + ≤ 10 A/AAAA | the client's PTR name resolves back to it (RFC 8601 iprev) |
//! | `helo-dns` | A/AAAA | the HELO name resolves, and whether to the client |
//! | `spf-helo` | ≤ 10 terms | RFC 7208 check_host for the HELO identity |
//! | `spf-mailfrom` | ≤ 10 terms | RFC 7208 check_host for the MAIL FROM identity |
//!
//! [`Checker`] runs single stages (the milter calls them at CONNECT, HELO
//! and MAIL) or all of them ([`Checker::run`]), stopping at the first stage
//! whose action is reject or tempfail unless asked to show everything.

mod fcrdns;
mod generic;
pub mod headers;
mod helo;
pub mod lint;
mod pipeline;
mod policy;
pub mod reply;
mod skip;

use std::fmt;
use std::str::FromStr;

pub use fcrdns::FcrdnsInfo;
pub use pipeline::{Checker, Client, Evaluation, Mode, Settings, Verdict};
pub use policy::{Action, Policy, PolicyError, StagePolicy};
pub use reply::Reply;
pub use skip::{SkipLists, SkipReason};
pub use tollgate_spf::{Identity, SpfOutput, SpfResult};

/// A stage, by the name the JSON output and the configuration use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Trusted networks, authenticated senders, listed HELO names and sender domains.
    Skip,
    /// HELO syntax and claims, without DNS.
    HeloSyntax,
    /// Forward-confirmed reverse DNS of the client.
    Fcrdns,
    /// Whether the HELO name resolves, and to the client.
    HeloDns,
    /// SPF for the HELO identity.
    SpfHelo,
    /// SPF for the MAIL FROM identity.
    SpfMailfrom,
}

impl Stage {
    /// Every stage, cheapest first.
    pub const ALL: [Stage; 6] = [
        Stage::Skip,
        Stage::HeloSyntax,
        Stage::Fcrdns,
        Stage::HeloDns,
        Stage::SpfHelo,
        Stage::SpfMailfrom,
    ];

    /// The stable name: `skip`, `helo-syntax`, `fcrdns`, `helo-dns`, `spf-helo`, `spf-mailfrom`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Skip => "skip",
            Stage::HeloSyntax => "helo-syntax",
            Stage::Fcrdns => "fcrdns",
            Stage::HeloDns => "helo-dns",
            Stage::SpfHelo => "spf-helo",
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
/// the client", `skipped` is the skip stage's "on a list".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 9] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::SoftFail,
        Outcome::Neutral,
        Outcome::None,
        Outcome::PermError,
        Outcome::TempError,
        Outcome::Mismatch,
        Outcome::Skipped,
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
    /// The SMTP reply, when the action is reject or tempfail.
    pub reply: Option<Reply>,
    /// For the SPF stages: the engine's full output.
    pub spf: Option<SpfOutput>,
    /// For fcrdns: the PTR names and the confirmed one.
    pub fcrdns: Option<FcrdnsInfo>,
    /// DNS queries this stage made (answered from cache or not).
    pub dns_queries: u32,
    /// For skip: why.
    pub skip: Option<SkipReason>,
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
        }
    }

    /// Whether this report ends the evaluation (reject or tempfail).
    pub fn is_decisive(&self) -> bool {
        matches!(self.action, Action::Reject | Action::Tempfail)
    }
}
