//! The embedded store: one SQLite file (rusqlite, SQLite built from its
//! bundled source) in WAL mode.
//!
//! - Crash-safe: a caller is answered only after the transaction that
//!   recorded its triplet committed. With `synchronous = NORMAL` in WAL mode
//!   a commit is in the operating system's hands when it returns, so a
//!   process killed with SIGKILL loses nothing it answered for; a power cut
//!   can lose the last commits, never the file's consistency.
//! - Shared: WAL mode lets `tollgate greylist` read and write the file while
//!   the milter runs (readers never block the writer; a second writer waits
//!   up to [`BUSY_TIMEOUT`]).
//! - Fast: one thread owns the connection and runs every request that is
//!   waiting in one transaction (group commit), so 64 connections cost one
//!   commit per batch, not one each.
//! - Expiring: the same thread deletes expired entries every
//!   [`SWEEP_INTERVAL`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::rules::{self, NetworkRecord, Settings, TripletRecord};
use crate::{Clock, Counts, Decision, Entry, Store, StoreError, StoreFuture, Triplet};

/// How long a writer waits for another process's write (the command line
/// while the milter runs).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired entries are deleted.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// The most requests run in one transaction.
const MAX_BATCH: usize = 512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS triplets (
  key TEXT PRIMARY KEY NOT NULL,
  first INTEGER NOT NULL,
  passed INTEGER NOT NULL,
  passes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS networks (
  network TEXT PRIMARY KEY NOT NULL,
  passes INTEGER NOT NULL,
  last INTEGER NOT NULL,
  manual INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// A request's answer, sent once its transaction committed (or failed).
type Done = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A request: runs on the store's thread, inside the batch's transaction
/// (or is told why there is none).
type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> Done + Send>;

/// The embedded store.
#[derive(Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    settings: Settings,
    jobs: mpsc::Sender<Job>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store at `path`; expired entries are
    /// deleted in the background by `clock` and `settings`.
    pub fn open(
        path: &Path,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<EmbeddedStore, StoreError> {
        let open_error = |e: rusqlite::Error| StoreError::Open {
            what: path.display().to_string(),
            problem: e.to_string(),
        };
        let conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                what: path.display().to_string(),
                problem: format!("cannot use write-ahead logging (journal mode {mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(open_error)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread_name = "greylist-store".to_owned();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || serve(conn, &queue, settings, clock.as_ref()))
            .map_err(|e| StoreError::Open {
                what: path.display().to_string(),
                problem: format!("cannot start the store thread: {e}"),
            })?;
        Ok(EmbeddedStore {
            path: path.to_owned(),
            settings,
            jobs,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes expired entries now; how many.
    pub fn sweep(&self, now: u64) -> StoreFuture<'_, u64> {
        self.call(move |conn, settings| sweep(conn, now, settings))
    }

    /// Runs `f` on the store's thread within a transaction; its result
    /// once the transaction committed.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Settings) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let settings = self.settings;
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn, &settings).map_err(backend),
                Err(e) => Err(e.clone()),
            };
            Box::new(move |commit: Option<&StoreError>| {
                let result = match commit {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                let _ = tx.send(result);
            })
        });
        let sent = self.jobs.send(job);
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The store's thread: batches of requests, one transaction each, and a
/// sweep every [`SWEEP_INTERVAL`].
fn serve(conn: Connection, queue: &mpsc::Receiver<Job>, settings: Settings, clock: &dyn Clock) {
    let mut next_sweep = Instant::now();
    loop {
        if Instant::now() >= next_sweep {
            match in_transaction(&conn, |c| sweep(c, clock.now(), &settings)) {
                Ok(n) if n > 0 => {
                    tracing::debug!(deleted = n, "greylist store: expired entries deleted")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "greylist store: cannot delete expired entries")
                }
            }
            next_sweep = Instant::now() + SWEEP_INTERVAL;
        }
        let wait = next_sweep.saturating_duration_since(Instant::now());
        let first = match queue.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
}

/// Runs a batch in one transaction, then answers every request.
fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE").map_err(backend) {
        for job in batch {
            job(Err(&e))(Some(&e));
        }
        return;
    }
    let done: Vec<Done> = batch.into_iter().map(|job| job(Ok(conn))).collect();
    let commit = conn.execute_batch("COMMIT").map_err(backend).err();
    if commit.is_some() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for d in done {
        d(commit.as_ref());
    }
}

fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn get_triplet(conn: &Connection, key: &str) -> Result<Option<TripletRecord>, rusqlite::Error> {
    conn.prepare_cached("SELECT first, passed, passes FROM triplets WHERE key = ?1")?
        .query_row([key], |r| {
            Ok(TripletRecord {
                first: as_u64(r.get(0)?),
                passed: as_u64(r.get(1)?),
                passes: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            })
        })
        .optional()
}

fn get_network(conn: &Connection, net: &str) -> Result<Option<NetworkRecord>, rusqlite::Error> {
    conn.prepare_cached("SELECT passes, last, manual FROM networks WHERE network = ?1")?
        .query_row([net], |r| {
            Ok(NetworkRecord {
                passes: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                last: as_u64(r.get(1)?),
                manual: r.get::<_, i64>(2)? != 0,
            })
        })
        .optional()
}

fn put_triplet(conn: &Connection, key: &str, t: &TripletRecord) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO triplets (key, first, passed, passes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(key) DO UPDATE SET first = ?2, passed = ?3, passes = ?4",
    )?
    .execute(params![key, as_i64(t.first), as_i64(t.passed), t.passes])?;
    Ok(())
}

fn put_network(conn: &Connection, net: &str, n: &NetworkRecord) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO networks (network, passes, last, manual) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(network) DO UPDATE SET passes = ?2, last = ?3, manual = ?4",
    )?
    .execute(params![net, n.passes, as_i64(n.last), i64::from(n.manual)])?;
    Ok(())
}

fn sweep(conn: &Connection, now: u64, s: &Settings) -> Result<u64, rusqlite::Error> {
    let passed_before = as_i64(now.saturating_sub(s.expire_ms()));
    let pending_before = as_i64(now.saturating_sub(s.window_ms()));
    let triplets = conn.execute(
        "DELETE FROM triplets WHERE (passes > 0 AND passed < ?1) OR (passes = 0 AND first < ?2)",
        params![passed_before, pending_before],
    )?;
    let networks = conn.execute("DELETE FROM networks WHERE last < ?1", [passed_before])?;
    Ok((triplets + networks) as u64)
}

impl Store for EmbeddedStore {
    fn check<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, Decision> {
        let key = triplet.key();
        let net = triplet.network.to_string();
        self.call(move |conn, settings| {
            let t = get_triplet(conn, &key)?;
            let n = get_network(conn, &net)?;
            let out = rules::decide(t, n, now, settings);
            if let Some(t) = &out.triplet {
                put_triplet(conn, &key, t)?;
            }
            if let Some(n) = &out.network {
                put_network(conn, &net, n)?;
            }
            Ok(out.decision)
        })
    }

    fn entries(&self, now: u64) -> StoreFuture<'_, Vec<Entry>> {
        self.call(move |conn, settings| {
            let mut out = Vec::new();
            let mut nets = conn
                .prepare("SELECT network, passes, last, manual FROM networks ORDER BY network")?;
            let rows = nets.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    NetworkRecord {
                        passes: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                        last: as_u64(r.get(2)?),
                        manual: r.get::<_, i64>(3)? != 0,
                    },
                ))
            })?;
            for row in rows {
                let (net, record) = row?;
                if let Ok(net) = net.parse::<IpNet>()
                    && !rules::network_expired(&record, now, settings)
                {
                    out.push(Entry::Network(net, record));
                }
            }
            let mut trips =
                conn.prepare("SELECT key, first, passed, passes FROM triplets ORDER BY key")?;
            let rows = trips.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    TripletRecord {
                        first: as_u64(r.get(1)?),
                        passed: as_u64(r.get(2)?),
                        passes: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                    },
                ))
            })?;
            for row in rows {
                let (key, record) = row?;
                if let Some(t) = Triplet::from_key(&key)
                    && !rules::triplet_expired(&record, now, settings)
                {
                    out.push(Entry::Triplet(t, record));
                }
            }
            Ok(out)
        })
    }

    fn counts(&self, now: u64) -> StoreFuture<'_, Counts> {
        let entries = self.entries(now);
        let settings = self.settings;
        Box::pin(async move { Ok(crate::count_entries(&entries.await?, &settings)) })
    }

    fn allow_network(&self, network: IpNet, now: u64) -> StoreFuture<'_, ()> {
        self.call(move |conn, _| {
            let net = network.to_string();
            let passes = get_network(conn, &net)?.map_or(0, |n| n.passes);
            put_network(
                conn,
                &net,
                &NetworkRecord {
                    passes,
                    last: now,
                    manual: true,
                },
            )
        })
    }

    fn allow_triplet<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, ()> {
        let key = triplet.key();
        self.call(move |conn, _| {
            let first = get_triplet(conn, &key)?.map_or(now, |t| t.first);
            put_triplet(
                conn,
                &key,
                &TripletRecord {
                    first,
                    passed: now,
                    passes: 1,
                },
            )
        })
    }

    fn forget_network(&self, network: IpNet) -> StoreFuture<'_, bool> {
        self.call(move |conn, _| {
            Ok(conn.execute(
                "DELETE FROM networks WHERE network = ?1",
                [network.to_string()],
            )? > 0)
        })
    }

    fn forget_triplet<'a>(&'a self, triplet: &'a Triplet) -> StoreFuture<'a, bool> {
        let key = triplet.key();
        self.call(
            move |conn, _| Ok(conn.execute("DELETE FROM triplets WHERE key = ?1", [key])? > 0),
        )
    }
}
