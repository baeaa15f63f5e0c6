//! The command line: `tollgate check` and `tollgate serve`.

pub mod check;
pub mod serve;
