//! tollgate's checks: the stages of the design, cheapest first, the policy
//! that maps each stage's result to an action, and the rendering of
//! `Received-SPF`, `Authentication-Results` and SMTP replies.
//!
//! | stage | DNS | establishes |
//! |---|---|---|
//! | `skip` | none | trusted network, authenticated sender, listed HELO or sender domain |
//! | `helo-syntax` | none | HELO is an FQDN or a matching address literal, and not us |
//! | `dnsbl` | 1 per list | the client on a DNS block list (`listed`) or allow list (`allowed`) |
//! | `fcrdns` | PTR + ≤ 10 A/AAAA | the client's PTR name resolves back to it (RFC 8601 iprev) |
//! | `rdns-name` | none | the confirmed name is a real one, not a generic pool name |
//! | `helo-dns` | A/AAAA | the HELO name resolves, and whether to the client |
//! | `spf-helo` | ≤ 10 terms | RFC 7208 check_host for the HELO identity |
//! | `sender-domain` | MX + ≤ 10 A/AAAA | the MAIL FROM domain can receive mail (RFC 7505 null MX) |
//! | `spf-mailfrom` | ≤ 10 terms | RFC 7208 check_host for the MAIL FROM identity |
//!
//! [`Checker`] runs single stages; [`Evaluator`] is the one per-connection
//! evaluator that owns their order for the milter and `tollgate check`
//! alike: it is told what the SMTP conversation revealed (connect, HELO,
//! MAIL FROM, end of message) and answers what is known so far.
//! [`Checker::run`] drives it over a whole [`Client`] at once.

mod address;
mod checker;
mod count;
mod dnsbl;
mod evaluator;
mod fcrdns;
mod generic;
pub mod headers;
mod helo;
pub mod lint;
mod memo;
mod names;
mod policy;
pub mod reply;
mod routable;
mod sender_domain;
mod skip;
mod stage;
mod verdict;

pub use address::{MailFrom, canonical, strip_brackets};
pub use checker::{Checker, Client, Mode, Settings};
pub use dnsbl::{DnsList, ListHit, ListKind};
pub use evaluator::Evaluator;
pub use fcrdns::FcrdnsInfo;
pub use names::find_name;
pub use policy::{Action, Policy, PolicyError, StagePolicy};
pub use reply::{Enhanced, Reply};
pub use skip::{SkipLists, SkipReason};
pub use stage::{Outcome, Stage, StageReport};
pub use tollgate_spf::{Identity, SpfOutput, SpfResult};
pub use verdict::{Evaluation, Verdict};

/// The dnsbl and sender-domain checks on their own, for the tests over
/// real DNS packets (`tests/dnsbl.rs`, `tests/sender_domain.rs`); the
/// evaluator is what runs them.
#[doc(hidden)]
pub mod stage_checks {
    pub use crate::dnsbl::{Finding as DnsblFinding, check as dnsbl};
    pub use crate::sender_domain::{
        Finding as SenderDomainFinding, MAX_MX_HOSTS, check as sender_domain,
        check_mx_answer as sender_domain_from_mx,
    };
}

/// The default of `dns.time_budget`: the most DNS time one SMTP command
/// (CONNECT, HELO, MAIL FROM, end of message) may take across all the
/// stages it runs.
pub const DEFAULT_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);
