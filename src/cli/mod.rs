//! The command line: `tollgate check`, `tollgate lint`, `tollgate serve` and `tollgate health`.

pub mod check;
pub mod dns_args;
pub mod health;
pub mod lint;
pub mod serve;
