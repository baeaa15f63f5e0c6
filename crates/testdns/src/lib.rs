//! A DNS server for tests (being written).
