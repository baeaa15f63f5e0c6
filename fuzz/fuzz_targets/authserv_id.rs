//! Fuzz target: the authserv-id of an incoming Authentication-Results value (RFC 8601 §2.2),
//! as the milter reads it from the network.
//! The checks live in `tollgate::fuzzing::authserv_id`, which the workspace tests
//! also run over `fuzz/seeds/authserv_id/` (tests/fuzz_seeds.rs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::authserv_id(data));
