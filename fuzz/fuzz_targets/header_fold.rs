//! Fuzz target: folding of the header values tollgate adds (name, newline, value).
//! The checks live in `tollgate::fuzzing::header_fold`, which the workspace tests
//! also run over `fuzz/seeds/header_fold/` (tests/fuzz_seeds.rs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::header_fold(data));
