//! An RFC 7208 SPF engine.
//!
//! [`Spf`] evaluates the two identities of RFC 7208 §2.3 and §2.4 for a
//! client address: the HELO/EHLO domain ([`Spf::check_helo`]) and the
//! MAIL FROM address ([`Spf::check_mailfrom`]), through the check_host
//! function of §4 over any [`Lookup`]. The record parser
//! ([`Record::parse`]) and macro expansion ([`MacroString`]) are public
//! too, for linting and fuzzing.
//!
//! Checks return results, not errors: a DNS failure is the `temperror`
//! result and a broken record is `permerror`, each with a `problem` that
//! says what went wrong. Nothing here panics or loops on hostile input;
//! work is bounded by the limits of §4.6.4 (at most 10 DNS-querying terms,
//! 2 void lookups, 10 names from an MX or PTR answer).
//!
//! ```
//! # use tollgate_dns::memory::Zone;
//! # use tollgate_spf::{Options, Spf, SpfResult};
//! let mut zone = Zone::new();
//! zone.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all");
//! let spf = Spf::new(zone, Options::default());
//! let out = futures_lite_block_on(spf.check_mailfrom(
//!     "192.0.2.7".parse().unwrap(), "alice@example.com", "mail.example.com"));
//! assert_eq!(out.result, SpfResult::Pass);
//! assert_eq!(out.mechanism.as_deref(), Some("ip4:192.0.2.0/24"));
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```

pub mod address;
mod domain;
mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod macros;
mod parsed;
pub mod record;
mod result;

use std::net::IpAddr;

use tollgate_dns::Lookup;

pub use eval::DEFAULT_EXPLANATION;
pub use macros::{MacroContext, MacroError, MacroString, MacroValues};
pub use parsed::RecordCache;
pub use record::{Directive, Mechanism, Modifier, ParseError, Qualifier, Record, TermError};
pub use result::{
    Explanation, Identity, QueryType, SpfOutput, SpfResult, TraceEntry, UnknownResult,
};

/// Settings of an evaluation.
#[derive(Clone, Debug)]
pub struct Options {
    /// The receiving host's domain, for the `r` macro and headers.
    pub receiver: String,
    /// Record every DNS query and its outcome in [`SpfOutput::trace`].
    pub trace: bool,
    /// The limit on DNS-querying terms (RFC 7208 §4.6.4: 10).
    pub max_dns_terms: u32,
    /// The limit on void lookups (RFC 7208 §4.6.4: 2).
    pub max_void_lookups: u32,
    /// The limit on names taken from one MX or PTR answer (RFC 7208 §4.6.4: 10).
    pub max_names: usize,
    /// A fixed value for the `t` macro; the current time when `None`.
    pub timestamp: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            receiver: "unknown".to_owned(),
            trace: false,
            max_dns_terms: 10,
            max_void_lookups: 2,
            max_names: 10,
            timestamp: None,
        }
    }
}

/// The parts of a MAIL FROM address that SPF uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// The local-part; empty when there was none.
    pub local_part: String,
    /// The domain.
    pub domain: String,
}

impl Sender {
    /// Splits a MAIL FROM address (with or without angle brackets) at its
    /// last `@`. The null sender becomes `postmaster@<helo>` (RFC 7208
    /// §2.4); an address without `@` is taken as a bare domain.
    pub fn parse(mail_from: &str, helo: &str) -> Sender {
        let bare = address::strip_brackets(mail_from);
        if bare.is_empty() {
            return Sender {
                local_part: "postmaster".to_owned(),
                domain: helo.to_owned(),
            };
        }
        match bare.rsplit_once('@') {
            Some((local, domain)) => Sender {
                local_part: local.to_owned(),
                domain: domain.to_owned(),
            },
            None => Sender {
                local_part: String::new(),
                domain: bare.to_owned(),
            },
        }
    }
}

/// The SPF checker: a [`Lookup`] and [`Options`].
#[derive(Debug)]
pub struct Spf<L> {
    lookup: L,
    options: Options,
    records: Option<std::sync::Arc<RecordCache>>,
}

impl<L: Lookup> Spf<L> {
    /// A checker that queries `lookup`.
    pub fn new(lookup: L, options: Options) -> Self {
        Spf {
            lookup,
            options,
            records: None,
        }
    }

    /// The same checker, taking parsed records from `records` (and keeping
    /// the ones it parses there) instead of parsing every record it fetches.
    pub fn with_record_cache(mut self, records: std::sync::Arc<RecordCache>) -> Self {
        self.records = Some(records);
        self
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The lookup in use.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }

    /// Checks the MAIL FROM identity (RFC 7208 §2.4): check_host(ip,
    /// domain of `mail_from`, `mail_from`). The null sender is checked as
    /// `postmaster@<helo>`.
    pub async fn check_mailfrom(&self, ip: IpAddr, mail_from: &str, helo: &str) -> SpfOutput {
        let sender = Sender::parse(mail_from, helo);
        self.check_host(ip, Identity::MailFrom, &sender, helo).await
    }

    /// Checks the HELO identity (RFC 7208 §2.3): check_host(ip, helo,
    /// `postmaster@<helo>`).
    pub async fn check_helo(&self, ip: IpAddr, helo: &str) -> SpfOutput {
        let sender = Sender {
            local_part: "postmaster".to_owned(),
            domain: helo.to_owned(),
        };
        self.check_host(ip, Identity::Helo, &sender, helo).await
    }

    /// check_host itself (RFC 7208 §4) for an already split sender.
    pub async fn check_host(
        &self,
        ip: IpAddr,
        identity: Identity,
        sender: &Sender,
        helo: &str,
    ) -> SpfOutput {
        eval::Eval::new(
            &self.lookup,
            &self.options,
            self.records.as_deref(),
            ip,
            identity,
            sender,
            helo,
        )
        .run()
        .await
    }
}
