//! Fuzz target: the SPF record parser, as the evaluator calls it
//! (`Record::is_spf1`, `Record::parse`). The checks live in
//! `tollgate_spf::fuzzing::record_parser`, which the workspace tests also
//! run over `fuzz/seeds/record_parser/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_spf::fuzzing::record_parser(data));
