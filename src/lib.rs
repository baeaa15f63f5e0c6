//! tollgate: a milter that turns away forged and bot mail at CONNECT, HELO
//! and MAIL FROM, using forward-confirmed reverse DNS, HELO checks and SPF.
//!
//! The work is done by the workspace crates: `tollgate-dns` (lookups),
//! `tollgate-spf` (RFC 7208) and `tollgate-checks` (stages, policy,
//! headers, replies, and the per-connection evaluator). This crate adds the
//! configuration file ([`config`]), the milter on indymilter ([`milter`]:
//! callbacks, sessions, the listener), Prometheus metrics ([`metrics`])
//! and the command line ([`cli`]).

pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod milter;

pub use tollgate_checks as checks;
pub use tollgate_dns as dns;
pub use tollgate_spf as spf;
