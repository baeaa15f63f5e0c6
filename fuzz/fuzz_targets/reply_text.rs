//! Fuzz target: reply text made safe for the milter protocol (every ' 0oubled).
//! The checks live in `tollgate::fuzzing::reply_text`, which the workspace tests
//! also run over `fuzz/seeds/reply_text/` (tests/fuzz_seeds.rs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::reply_text(data));
