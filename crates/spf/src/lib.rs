//! RFC 7208 SPF engine.
