//! A fresh directory for one test, shared by the test binaries (each
//! includes this file with `#[path]`): created empty under the system's
//! temporary directory, removed on drop, kept for inspection when the test
//! panicked or `TOLLGATE_TEST_KEEP` (or `TOLLGATE_E2E_KEEP`) is set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A test's own directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `tollgate-{label}-{pid}-{n}`, empty.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tollgate-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = std::env::var_os("TOLLGATE_TEST_KEEP").is_some()
            || std::env::var_os("TOLLGATE_E2E_KEEP").is_some();
        if std::thread::panicking() || keep {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
