//! Every fuzz target's seed corpus through the target's own checks, without
//! a fuzzing engine, so that `cargo test --workspace` keeps the targets
//! (`fuzz/`) and their properties from rotting unseen (issue 14, item 14:
//! `record_parser` had failed on the empty input for as long as nobody ran
//! it).
//!
//! Each target in `fuzz/Cargo.toml` must call one check function of
//! `tollgate::fuzzing` or `tollgate_spf::fuzzing` (listed in [`CHECKS`]),
//! and have seeds in `fuzz/seeds/<target>/`, at least one of them not
//! empty; every seed goes through the check.

use std::fs;
use std::path::{Path, PathBuf};

/// A target name, the path its fuzz_targets file calls, and that function.
type Check = (&'static str, &'static str, fn(&[u8]));

const CHECKS: [Check; 6] = [
    (
        "record_parser",
        "tollgate_spf::fuzzing::record_parser",
        tollgate_spf::fuzzing::record_parser,
    ),
    (
        "macro_expand",
        "tollgate_spf::fuzzing::macro_expand",
        tollgate_spf::fuzzing::macro_expand,
    ),
    (
        "authserv_id",
        "tollgate::fuzzing::authserv_id",
        tollgate::fuzzing::authserv_id,
    ),
    (
        "reply_text",
        "tollgate::fuzzing::reply_text",
        tollgate::fuzzing::reply_text,
    ),
    (
        "header_fold",
        "tollgate::fuzzing::header_fold",
        tollgate::fuzzing::header_fold,
    ),
    (
        "config_load",
        "tollgate::fuzzing::config_load",
        tollgate::fuzzing::config_load,
    ),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`.
fn targets() -> Vec<String> {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name = ") {
            names.push(value.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn every_fuzz_target_calls_a_shared_check_and_has_seeds() {
    let targets = targets();
    assert_eq!(targets.len(), CHECKS.len(), "targets {targets:?}");
    for target in &targets {
        let (_, path, _) = CHECKS
            .iter()
            .find(|(name, ..)| name == target)
            .unwrap_or_else(|| panic!("fuzz target {target} has no shared check here"));
        let source = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{target}.rs")))
            .unwrap_or_else(|e| panic!("fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("{path}(data)")),
            "fuzz_targets/{target}.rs does not call {path}"
        );
    }
}

#[test]
fn every_seed_passes_its_fuzz_targets_checks() {
    for (target, _, check) in CHECKS {
        let dir = fuzz_dir().join("seeds").join(target);
        let mut seeds: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        seeds.sort();
        let sizes: Vec<usize> = seeds
            .iter()
            .map(|seed| {
                let data = fs::read(seed).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{} fails its check", seed.display());
                data.len()
            })
            .collect();
        assert!(
            sizes.iter().any(|&n| n > 0),
            "{target}: no seed with content in {}",
            dir.display()
        );
    }
}

/// Regression (found by the `header_fold` target): a value ending in a
/// space, on a line already at the folding width, was folded before the
/// empty last word, so the header field ended in a continuation line of
/// white space only (RFC 5322 §3.2.2).
#[test]
fn fold_leaves_no_white_space_continuation_line_trailing_space_regression() {
    let input = format!("Received-SPF\n{} ", "x".repeat(80));
    tollgate::fuzzing::header_fold(input.as_bytes());
    let input = format!(
        "Received-SPF\npass {}   {} ",
        "y".repeat(70),
        "z".repeat(70)
    );
    tollgate::fuzzing::header_fold(input.as_bytes());
}

/// Regression (found by the `config_load` target): an unknown key with line
/// breaks in it was quoted raw by the error, so "one line naming file, key
/// and problem" became many lines on the terminal and in the log.
#[test]
fn config_error_stays_one_line_for_a_key_with_line_breaks_regression() {
    tollgate::fuzzing::config_load(b"listen: unix:/run/t.sock\n\"bad\\n\\nkey\": 1\n");
    tollgate::fuzzing::config_load(b"\"\\r\\n\\u001b[31m\": x\n");
}

/// Regression (found by the `macro_expand` target, in the property, not in
/// the engine): a macro string with a space, put into
/// `v=spf1 exists:<string> -all`, makes more terms than the `exists` one
/// (`%{l}.x a` adds an `a` mechanism, which queries the domain's address),
/// and the property expected the `exists` query alone. It now checks only
/// records that hold exactly the `exists` term and `-all`.
#[test]
fn exists_query_property_skips_records_a_space_split_regression() {
    tollgate_spf::fuzzing::macro_expand(b"%{l}.p-allslii a");
    // The same string without the space is checked, and passes.
    tollgate_spf::fuzzing::macro_expand(b"%{l}.p-allslii.a");
}
