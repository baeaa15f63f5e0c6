//! The command line: `tollgate check`, `tollgate lint`, `tollgate serve` and `tollgate health`.

pub mod check;
pub mod health;
pub mod lint;
pub mod serve;
