//! The command line: `tollgate check` (and, from the milter work on,
//! `tollgate serve`).

pub mod check;
