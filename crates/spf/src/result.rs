//! What an SPF evaluation produces: the result keyword and everything an
//! administrator needs to understand it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use tollgate_dns::LookupError;

/// The result of check_host (RFC 7208 §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// The client is authorized.
    Pass,
    /// The client is explicitly not authorized.
    Fail,
    /// The client is probably not authorized.
    SoftFail,
    /// The domain makes no assertion about the client.
    Neutral,
    /// No SPF record, or no valid domain to check.
    None,
    /// The domain's records could not be interpreted.
    PermError,
    /// A transient (usually DNS) error.
    TempError,
}

impl SpfResult {
    /// The RFC 7208 keyword in lower case, as used in headers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::PermError => "permerror",
            SpfResult::TempError => "temperror",
        }
    }

    /// All results, in the order of RFC 7208 §2.6.
    pub const ALL: [SpfResult; 7] = [
        SpfResult::None,
        SpfResult::Neutral,
        SpfResult::Pass,
        SpfResult::Fail,
        SpfResult::SoftFail,
        SpfResult::TempError,
        SpfResult::PermError,
    ];
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown result keyword.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown SPF result {0:?}")]
pub struct UnknownResult(pub String);

impl FromStr for SpfResult {
    type Err = UnknownResult;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpfResult::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownResult(s.to_owned()))
    }
}

/// Which identity was checked (RFC 7208 §2.3, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The HELO/EHLO domain.
    Helo,
    /// The MAIL FROM address.
    MailFrom,
}

impl Identity {
    /// `helo` or `mailfrom`, as in `Received-SPF: … identity=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Helo => "helo",
            Identity::MailFrom => "mailfrom",
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The explanation of a fail (RFC 7208 §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The text, printable ASCII only.
    pub text: String,
    /// True when the text came from the domain's own `exp=` record; false
    /// for tollgate's default.
    pub from_domain: bool,
}

/// The DNS record types the engine queries (it never asks type 99, `Spf`):
/// the one type of the DNS layer, whose observer reports the same queries.
pub use tollgate_dns::QueryType;

/// One DNS query made during an evaluation, with its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// The record type asked for.
    pub qtype: QueryType,
    /// The name asked about (for PTR, the address).
    pub name: String,
    /// The answer records in text form, or why there were none.
    pub outcome: Result<Vec<String>, LookupError>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> ", self.qtype, self.name)?;
        match &self.outcome {
            Ok(records) => write!(f, "{}", records.join(", ")),
            Err(e) => write!(f, "{e}"),
        }
    }
}

/// Everything an evaluation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfOutput {
    /// The identity checked.
    pub identity: Identity,
    /// The client address evaluated (an IPv4-mapped IPv6 address as IPv4).
    pub ip: IpAddr,
    /// The HELO name given.
    pub helo: String,
    /// The sender used (`postmaster@<domain>` when there was no local-part).
    pub sender: String,
    /// The domain check_host started from.
    pub checked_domain: String,
    /// The result keyword.
    pub result: SpfResult,
    /// The domain whose record decided (after redirects), or where the
    /// error was found; the checked domain when no record was found.
    pub domain: String,
    /// The term that matched, as written (`-all`, `include:_spf.example.com`).
    pub mechanism: Option<String>,
    /// For fail: the explanation.
    pub explanation: Option<Explanation>,
    /// For permerror, temperror and none: what went wrong, in words.
    pub problem: Option<String>,
    /// DNS-querying terms evaluated (limit 10, RFC 7208 §4.6.4).
    pub lookups: u32,
    /// Void lookups (limit 2, RFC 7208 §4.6.4).
    pub void_lookups: u32,
    /// All DNS queries made, including record, address and explanation lookups.
    pub queries: u32,
    /// Every query and its outcome, when tracing was asked for.
    pub trace: Vec<TraceEntry>,
}
