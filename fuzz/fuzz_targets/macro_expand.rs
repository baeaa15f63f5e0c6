//! Fuzz target: macro-string parsing and expansion, through the functions
//! the evaluator calls (`MacroString::expand_domain` for every domain-spec,
//! `MacroString::expand` for explanation text) and through the evaluator
//! itself on an `exists` term. Input: a macro string, optionally followed
//! by a newline and the sender's local part. The checks live in
//! `tollgate_spf::fuzzing::macro_expand`, which the workspace tests also
//! run over `fuzz/seeds/macro_expand/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_spf::fuzzing::macro_expand(data));
