//! `tollgate serve`: the milter on indymilter.
//!
//! [`Milter::bind`] opens the socket; [`Milter::run`] serves until the
//! shutdown future completes, then stops accepting, gives live sessions
//! up to `shutdown_timeout` to finish, and returns. A connection on which
//! the MTA sends nothing for `connection_timeout` is closed, so idle
//! connections cannot hold the `max_connections` slots. [`MilterHandle`]
//! reloads the configuration (SIGHUP in `tollgate serve`,
//! src/cli/serve.rs), reading and parsing the file on a blocking thread: a
//! new file that fails validation is logged and the old configuration
//! keeps serving; live sessions keep the snapshot they started with.

mod callbacks;
pub(crate) mod fields;
mod listener;
mod logline;
mod session;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tollgate_checks::Checker;
use tollgate_dns::{HickoryLookup, ResolverError, ResolverOptions};
use tollgate_greylist::{Clock, Greylist, SystemClock};

use crate::config::{Config, ConfigError, Dns, Listen};

mod store;

pub use store::open_store;

/// Why the milter could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting cannot be applied (`socket_group` names no group).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The socket could not be opened.
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        /// Where.
        listen: Listen,
        /// Why.
        source: std::io::Error,
    },
    /// The resolver could not be set up.
    #[error("cannot set up DNS: {0}")]
    Resolver(#[from] ResolverError),
    /// The milter stopped accepting connections.
    #[error("milter failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One configuration and what is built from it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub checker: Arc<Checker<HickoryLookup>>,
    /// Greylisting, when some policy result uses it.
    pub greylist: Option<Greylist>,
}

impl Shared {
    async fn build(
        config: Config,
        reuse: Option<&Shared>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Shared, ServeError> {
        // Keep the resolver (and its cache) when DNS settings did not change.
        let lookup = match reuse {
            Some(old) if old.config.dns == config.dns => old.checker.lookup().clone(),
            _ => resolver(&config.dns)?,
        };
        // Keep the greylisting store when its settings did not change; a
        // store that cannot be opened refuses the configuration (at start:
        // exit 78; on reload: the old configuration and store keep serving).
        let greylist = if config.checks.policy.uses_greylist() {
            match reuse.and_then(|old| {
                old.greylist
                    .as_ref()
                    .filter(|_| old.config.greylist == config.greylist)
            }) {
                Some(kept) => Some(kept.clone()),
                None => {
                    let store = open_store(&config.greylist, Arc::clone(clock))
                        .await
                        .map_err(|e| ConfigError {
                            file: config.path.display().to_string(),
                            key: config.greylist.store.key().to_owned(),
                            line: None,
                            problem: e.to_string(),
                        })?;
                    Some(Greylist::new(
                        store,
                        config.greylist.settings,
                        Arc::clone(clock),
                    ))
                }
            }
        } else {
            None
        };
        let checker = Arc::new(Checker::new(lookup, config.checks.clone()));
        Ok(Shared {
            config,
            checker,
            greylist,
        })
    }
}

fn resolver(dns: &Dns) -> Result<HickoryLookup, ServeError> {
    Ok(HickoryLookup::new(ResolverOptions::from(dns))?)
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct State {
    current: RwLock<Arc<Shared>>,
    /// Greylisting's time.
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    live: AtomicUsize,
    idle: Notify,
}

impl State {
    /// The configuration snapshot for a new connection.
    pub(crate) fn current(&self) -> Arc<Shared> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn session_opened(self: &Arc<Self>) -> LiveSession {
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveSession(Arc::clone(self))
    }
}

/// Counts a session as live while it exists.
#[derive(Debug)]
pub(crate) struct LiveSession(Arc<State>);

impl Drop for LiveSession {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A bound milter, ready to run.
#[derive(Debug)]
pub struct Milter {
    state: Arc<State>,
    bound: listener::Bound,
}

/// Reloads the configuration of a running milter.
#[derive(Clone, Debug)]
pub struct MilterHandle {
    state: Arc<State>,
}

impl Milter {
    /// Opens the socket, the resolver and (when a policy result uses
    /// `greylist`) the greylisting store for `config`.
    pub async fn bind(config: Config) -> Result<Milter, ServeError> {
        Milter::bind_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`bind`](Self::bind) with greylisting on `clock` (tests move a
    /// `ManualClock` instead of waiting).
    pub async fn bind_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Milter, ServeError> {
        // The group is looked up before the socket exists: a bad name leaves
        // no socket file behind.
        let gid = match (&config.listen, config.socket_group.as_deref()) {
            (Listen::Unix(_), Some(group)) => {
                Some(listener::group_id(group).map_err(|problem| ConfigError {
                    file: config.path.display().to_string(),
                    key: "socket_group".to_owned(),
                    line: None,
                    problem,
                })?)
            }
            _ => None,
        };
        let bound = listener::Bound::bind(&config.listen, config.socket_mode, gid)
            .await
            .map_err(|source| ServeError::Bind {
                listen: config.listen.clone(),
                source,
            })?;
        let shared = Shared::build(config, None, &clock).await?;
        Ok(Milter {
            state: Arc::new(State {
                current: RwLock::new(Arc::new(shared)),
                clock,
                next_id: AtomicU64::new(0),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
            bound,
        })
    }

    /// Where the milter listens (with the real port for `inet:…:0`).
    pub fn listen(&self) -> &Listen {
        &self.bound.listen
    }

    /// A handle for reloading.
    pub fn handle(&self) -> MilterHandle {
        MilterHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// Serves until `shutdown` completes; then stops accepting and lets
    /// live sessions finish for up to `shutdown_timeout`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let state = self.state;
        let (max_connections, connection_timeout, drain) = {
            let current = state.current();
            (
                current.config.max_connections,
                current.config.connection_timeout,
                current.config.shutdown_timeout,
            )
        };
        let stop_accepting = CancellationToken::new();
        let listener = self.bound.into_listener(stop_accepting.clone());
        let config = indymilter::Config {
            max_connections,
            // indymilter's default, libmilter's 7210 s, let idle connections
            // hold every slot for two hours.
            connection_timeout,
            ..indymilter::Config::default()
        };
        let finished = CancellationToken::new();
        let callbacks = callbacks::callbacks(Arc::clone(&state));
        let milter = indymilter::run(
            listener,
            callbacks,
            config,
            finished.clone().cancelled_owned(),
        );
        let drain_state = Arc::clone(&state);
        let stopper = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, waiting for live sessions");
            stop_accepting.cancel();
            let wait = async {
                loop {
                    let idle = drain_state.idle.notified();
                    if drain_state.live.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    idle.await;
                }
            };
            if tokio::time::timeout(drain, wait).await.is_err() {
                tracing::warn!(
                    live = drain_state.live.load(Ordering::SeqCst),
                    "sessions still open after the shutdown timeout; closing them"
                );
            }
            finished.cancel();
        };
        let (result, ()) = tokio::join!(milter, stopper);
        result.map_err(ServeError::Io)
    }
}

impl MilterHandle {
    /// Reads the configuration file again (on a blocking thread: parsing
    /// must not stall the sessions) and, if it is valid, serves new
    /// connections with it. On error the old configuration stays.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let path = self.state.current().config.path.clone();
        let config = Config::load_off_thread(path.clone()).await?;
        self.apply(config).await.map_err(|e| match e {
            ServeError::Config(e) => e,
            other => ConfigError {
                file: path.display().to_string(),
                key: "dns".to_owned(),
                line: None,
                problem: other.to_string(),
            },
        })
    }

    /// Serves new connections with `config`; on error the old
    /// configuration (and its greylisting store) stays.
    pub async fn apply(&self, config: Config) -> Result<(), ServeError> {
        let old = self.state.current();
        if old.config.listen != config.listen {
            tracing::warn!(
                old = %old.config.listen,
                new = %config.listen,
                "listen changed: restart tollgate to apply"
            );
        }
        let shared = Shared::build(config, Some(&old), &self.state.clock).await?;
        *self
            .state
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(shared);
        Ok(())
    }

    /// How many sessions are open.
    pub fn live_sessions(&self) -> usize {
        self.state.live.load(Ordering::SeqCst)
    }
}
