//! The embedded store on real files: the shared rules, a restart between
//! the first attempt and the retry, two handles on one file (the milter
//! and `tollgate greylist`), the background sweep, and a process killed
//! with SIGKILL in the middle of a write burst.

#[path = "support/scenarios.rs"]
mod scenarios;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scenarios::{DAY, MIN, T0, settings, triplet};
use tollgate_greylist::{Decision, EmbeddedStore, ManualClock, Store};

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tollgate-greylist-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn db(&self) -> PathBuf {
        self.0.join("greylist.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path) -> EmbeddedStore {
    EmbeddedStore::open(path, settings(), Arc::new(ManualClock::at(T0))).unwrap()
}

/// Without auto-allow: every triplet of the burst is greylisted and passes.
fn open_burst(path: &Path) -> EmbeddedStore {
    let settings = tollgate_greylist::Settings {
        auto_allow: 0,
        ..settings()
    };
    EmbeddedStore::open(path, settings, Arc::new(ManualClock::at(T0))).unwrap()
}

#[tokio::test]
async fn embedded_store_follows_the_retry_rules() {
    let dir = TempDir::new();
    scenarios::retry_rules(&open(&dir.db())).await;
}

#[tokio::test]
async fn embedded_store_auto_allows_a_network_after_five_passes() {
    let dir = TempDir::new();
    scenarios::auto_allow(&open(&dir.db())).await;
}

#[tokio::test]
async fn embedded_store_allows_forgets_lists_and_counts_by_hand() {
    let dir = TempDir::new();
    scenarios::by_hand(&open(&dir.db())).await;
}

#[tokio::test]
async fn a_triplet_seen_before_a_restart_passes_after_it() {
    let dir = TempDir::new();
    let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
    let store = open(&dir.db());
    assert!(matches!(
        store.check(&t, T0).await.unwrap(),
        Decision::New { .. }
    ));
    drop(store);
    let store = open(&dir.db());
    assert!(matches!(
        store.check(&t, T0 + 6 * MIN).await.unwrap(),
        Decision::Passed { .. }
    ));
}

#[tokio::test]
async fn a_second_handle_reads_and_writes_while_the_first_is_open() {
    let dir = TempDir::new();
    let milter = open(&dir.db());
    let cli = open(&dir.db());
    let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
    assert!(matches!(
        milter.check(&t, T0).await.unwrap(),
        Decision::New { .. }
    ));
    assert_eq!(cli.counts(T0).await.unwrap().pending, 1);
    cli.allow_triplet(&t, T0 + MIN).await.unwrap();
    assert_eq!(
        milter.check(&t, T0 + 2 * MIN).await.unwrap(),
        Decision::Known
    );
}

#[tokio::test]
async fn the_sweep_deletes_expired_entries_only() {
    let dir = TempDir::new();
    let store = open(&dir.db());
    let old = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
    let young = triplet("192.0.2.10", "alice@example.com", "carol@example.org");
    store.check(&old, T0).await.unwrap();
    store.check(&young, T0 + 2 * DAY).await.unwrap();
    assert_eq!(store.sweep(T0 + 2 * DAY + MIN).await.unwrap(), 1);
    assert_eq!(store.counts(T0 + 2 * DAY + MIN).await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_at_open() {
    let dir = TempDir::new();
    std::fs::write(
        dir.db(),
        b"not a database, just text that is long enough to matter",
    )
    .unwrap();
    let err =
        EmbeddedStore::open(&dir.db(), settings(), Arc::new(ManualClock::at(T0))).unwrap_err();
    assert!(err.to_string().starts_with("cannot open "), "{err}");
    let missing = dir.0.join("no/such/dir/greylist.db");
    assert!(EmbeddedStore::open(&missing, settings(), Arc::new(ManualClock::at(T0))).is_err());
}

/// The writer of the SIGKILL test (run by it in a child process, with
/// the store path in `TOLLGATE_GREYLIST_WRITER`): greylists and passes
/// triplets as fast as it can, printing each one the store answered
/// `Passed` for, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of passed_triplets_survive_sigkill_during_a_write_burst"]
async fn write_burst_child() {
    let path = std::env::var("TOLLGATE_GREYLIST_WRITER").expect("run by the SIGKILL test");
    let store = Arc::new(open_burst(Path::new(&path)));
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        // Eight writers at once, as the milter's sessions would be.
        let mut tasks = Vec::new();
        for j in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let t = triplet(
                    "198.51.100.1",
                    &format!("s{i}-{j}x@example.com"),
                    "r@example.org",
                );
                store.check(&t, T0).await.unwrap();
                let d = store.check(&t, T0 + 6 * MIN).await.unwrap();
                assert!(matches!(d, Decision::Passed { .. }), "{d:?}");
                t.key()
            }));
        }
        for task in tasks {
            writeln!(out, "{}", task.await.unwrap()).unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn passed_triplets_survive_sigkill_during_a_write_burst() {
    let dir = TempDir::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "write_burst_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOLLGATE_GREYLIST_WRITER", dir.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(t) = tollgate_greylist::Triplet::from_key(line.trim()) {
            acknowledged.push(t);
        }
        if acknowledged.len() == 400 {
            // In the middle of the burst: the writer is still writing.
            child.kill().unwrap();
            break;
        }
    }
    let _ = child.wait();
    assert_eq!(acknowledged.len(), 400, "the writer printed too little");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open_burst(&dir.db());
        for t in &acknowledged {
            assert_eq!(
                store.check(t, T0 + 7 * MIN).await.unwrap(),
                Decision::Known,
                "{t} was answered passed before the kill"
            );
        }
    });
}

/// The size of the store per million passed triplets (docs/performance.md):
/// `cargo test -p tollgate-greylist --test embedded -- --ignored --nocapture store_size`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/performance.md (about a minute)"]
async fn store_size_per_million_triplets() {
    let dir = TempDir::new();
    let store = Arc::new(open_burst(&dir.db()));
    let n: u64 = std::env::var("TOLLGATE_GREYLIST_FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let t = realistic_triplet(i);
                store.check(&t, T0).await.unwrap();
                store.check(&t, T0 + 6 * MIN).await.unwrap();
                i += 64;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let counts = store.counts(T0 + 7 * MIN).await.unwrap();
    assert_eq!(counts.passed, n);
    drop(store);
    // Closing checkpoints the WAL into the file.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let file = size(dir.db());
    let wal = size(dir.0.join("greylist.db-wal"));
    println!(
        "{n} passed triplets: file {:.1} MiB, WAL {:.1} MiB, {:.0} bytes per triplet; {:.0} checks/s",
        file as f64 / 1048576.0,
        wal as f64 / 1048576.0,
        (file + wal) as f64 / n as f64,
        (2 * n) as f64 / elapsed.as_secs_f64()
    );
    assert!((file + wal) / n < 1024, "over 1 KiB per triplet");
}

/// Triplet `i` of a realistic mix: 1,000 client networks, 5,000 sender
/// domains, 20,000 recipients.
pub fn realistic_triplet(i: u64) -> tollgate_greylist::Triplet {
    triplet(
        &format!("2001:db8:{:x}::25", i % 1000),
        &format!("user{i}@sender{}.example.com", i % 5000),
        &format!("rcpt{}@example.org", i % 20_000),
    )
}
