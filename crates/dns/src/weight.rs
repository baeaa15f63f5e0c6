//! What an answer costs to keep, so that the caches in front of the
//! resolver (the answer map, a connection's memo) can refuse answers too
//! large to hold many of: a hostile zone can answer with 64 KiB of TXT.

use crate::Mx;

/// The largest answer kept, in bytes of data: far more than an SPF record
/// (RFC 7208 §3.4 asks for under 450 octets) or an MX set needs, less
/// than the apex TXT sets of domains that publish many verification
/// strings, which are then answered by the resolver's cache instead.
pub const MAX_KEPT_BYTES: usize = 4096;

/// What a record costs to keep, in bytes of data.
pub trait Weight {
    /// Bytes of data: 4 or 16 for an address, the length of a name or string.
    fn weight(&self) -> usize;
}

impl Weight for std::net::Ipv4Addr {
    fn weight(&self) -> usize {
        4
    }
}

impl Weight for std::net::Ipv6Addr {
    fn weight(&self) -> usize {
        16
    }
}

impl Weight for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for Mx {
    fn weight(&self) -> usize {
        2 + self.exchange.len()
    }
}
