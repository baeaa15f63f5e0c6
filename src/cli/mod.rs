//! The command line: `tollgate check`, `tollgate lint`, `tollgate serve`,
//! `tollgate greylist` and `tollgate health`.

pub mod check;
pub mod dns_args;
pub mod greylist;
pub mod health;
pub mod lint;
pub mod serve;
