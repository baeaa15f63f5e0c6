//! The command line: `tollgate check`, `tollgate serve` and `tollgate health`.

pub mod check;
pub mod health;
pub mod serve;
