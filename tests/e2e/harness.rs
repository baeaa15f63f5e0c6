//! The test harness of the end-to-end tests: `harness = false` in
//! Cargo.toml, and [libtest-mimic] in its place, so that a test whose real
//! MTA is missing is reported **ignored** (with the reason) instead of
//! passed. The built-in harness has no way to ignore a test at run time: a
//! test that returned early was counted as passed, and its skip notice was
//! swallowed with the rest of its captured output.
//!
//! A test is a `fn() -> Result<(), Missing>`: it returns [`Missing`] (with
//! `?` on the `require` functions) when a part it needs is not there, and
//! panics when it fails. When a part is missing and [`required`] is true
//! (`CI` set, as `.ci/run` runs under CI, or `TOLLGATE_E2E_REQUIRED=1`),
//! the test fails instead: CI cannot go green by testing nothing.
//!
//! libtest-mimic does not capture output, so a test writes its diagnostics
//! with [`note`]: they are kept and shown with the failure, or printed at
//! once with `--nocapture`. The summary line is the built-in harness's
//! (`test result: ok. N passed; N failed; N ignored; ...`), and the usual
//! arguments (a filter, `--exact`, `--list`, `--test-threads`, ...) work.
//!
//! [libtest-mimic]: https://docs.rs/libtest-mimic

use std::cell::RefCell;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Why a test could not run: a part it needs (an MTA, root, ...) is
/// missing. Made by [`super::require`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

/// What a test returns: `Ok` when it ran (and did not panic), `Err` when it
/// could not run.
pub type TestResult = Result<(), Missing>;

/// One test: its name and its function.
pub type Test = (&'static str, fn() -> TestResult);

/// Whether a missing part fails the test rather than ignoring it: under CI
/// (`CI` set to anything but empty, `0` or `false`) or with
/// `TOLLGATE_E2E_REQUIRED=1`.
pub fn required() -> bool {
    required_by().is_some()
}

/// The environment variable that makes missing parts failures, if any.
fn required_by() -> Option<&'static str> {
    let set = |name: &str| {
        std::env::var(name)
            .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    if set("TOLLGATE_E2E_REQUIRED") {
        Some("TOLLGATE_E2E_REQUIRED")
    } else if set("CI") {
        Some("CI")
    } else {
        None
    }
}

/// Some test was ignored because a part was missing.
static IGNORED_AT_RUN_TIME: AtomicBool = AtomicBool::new(false);

/// Print notes at once (`--nocapture`) rather than keep them for a failure.
static NOCAPTURE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The notes of the test running on this thread.
    static NOTES: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records a diagnostic of the running test (delivered headers, an SMTP
/// transcript, ...): shown if the test fails, or at once with `--nocapture`.
pub fn note(text: impl Display) {
    if NOCAPTURE.load(Ordering::Relaxed) {
        eprintln!("{text}");
    } else {
        NOTES.with(|n| {
            let mut n = n.borrow_mut();
            n.push_str(&text.to_string());
            n.push('\n');
        });
    }
}

/// Runs one test on this thread: `Completed`, `Ignored` with the reason,
/// or `Failed` with the panic message and the test's notes.
fn run_one(test: fn() -> TestResult) -> Result<Completion, Failed> {
    NOTES.with(|n| n.borrow_mut().clear());
    let outcome = catch_unwind(AssertUnwindSafe(test));
    let notes = NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()));
    let with_notes = |message: String| {
        if notes.is_empty() {
            Failed::from(message)
        } else {
            Failed::from(format!("{message}\n---- notes ----\n{notes}"))
        }
    };
    match outcome {
        Ok(Ok(())) => Ok(Completion::Completed),
        Ok(Err(Missing(why))) => match required_by() {
            Some(var) => Err(with_notes(format!(
                "did not run: {why}; {var} is set, so a missing part is a failure"
            ))),
            None => {
                IGNORED_AT_RUN_TIME.store(true, Ordering::Relaxed);
                Ok(Completion::ignored_with(why))
            }
        },
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            Err(with_notes(format!("test panicked: {message}")))
        }
    }
}

/// The `main` of a test binary: runs `tests` as libtest-mimic trials with
/// the command line's arguments.
pub fn run(tests: &[Test]) -> ExitCode {
    let args = Arguments::from_args();
    NOCAPTURE.store(args.nocapture, Ordering::Relaxed);
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            // `stringify!` of a path may space its `::`.
            Trial::ignorable_test(name.replace(' ', ""), move || run_one(test))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if IGNORED_AT_RUN_TIME.load(Ordering::Relaxed) {
        eprintln!(
            "note: tests were ignored because a part they need is missing (see above); \
             `bash .ci/run` as root installs everything, and CI=true or \
             TOLLGATE_E2E_REQUIRED=1 makes a missing part a failure"
        );
    }
    conclusion.exit_code()
}

/// `fn main` for a test binary whose tests are the functions named:
/// `e2e::harness::main!(test_a, module::test_b);`, named as written. A test function left out of
/// the list is dead code, which clippy (`-D warnings`) refuses.
macro_rules! main {
    ($($test:path),+ $(,)?) => {
        fn main() -> std::process::ExitCode {
            e2e::harness::run(&[$(
                (stringify!($test), $test as fn() -> e2e::harness::TestResult),
            )+])
        }
    };
}
pub(crate) use main;
