//! tollgate: a milter that turns away forged and bot mail at CONNECT, HELO
//! and MAIL FROM, using forward-confirmed reverse DNS, HELO checks and SPF.

pub use tollgate_dns as dns;
pub use tollgate_spf as spf;
