//! A real DNS server for tollgate's tests and benchmarks.
//!
//! [`TestDns`] binds UDP and TCP on one port of 127.0.0.1 and answers
//! authoritatively from a [`Zone`](tollgate_dns::memory::Zone), with the
//! zone's own semantics ([`Zone::query`](tollgate_dns::memory::Zone::query)):
//! CNAME chains in the answer section, NXDOMAIN and NODATA with an SOA
//! record (so resolvers cache them), queries for `TIMEOUT` names never
//! answered, SERVFAIL for CNAME loops. UDP answers over 512 bytes are
//! truncated and must be asked again over TCP. Tests can swap the zone,
//! force a response code for a name, hold answers back by a fixed or random
//! latency ([`TestDns::set_latency`], e.g. 20 ms ± 10 ms) to see DNS round
//! trips without leaving loopback, and read a log of the queries received.
//!
//! [`suite`] loads zone data and tests in the OpenSPF suite's YAML form.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let zone = tollgate_testdns::suite::parse_zone("example.com: [ {TXT: 'v=spf1 -all'} ]")
//!     .expect("valid zone data");
//! let server = tollgate_testdns::TestDns::start(zone).await?;
//! println!("nameserver at {}", server.addr());
//! # Ok(()) }
//! ```

mod answer;
mod latency;
mod server;
pub mod suite;

pub use latency::{Latency, LatencyError};
pub use server::{LoggedQuery, Rcode, TestDns, Transport};
