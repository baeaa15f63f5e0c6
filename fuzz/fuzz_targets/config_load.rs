//! Fuzz target: configuration text through Config::parse, as the daemon loads its file.
//! The checks live in `tollgate::fuzzing::config_load`, which the workspace tests
//! also run over `fuzz/seeds/config_load/` (tests/fuzz_seeds.rs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::config_load(data));
