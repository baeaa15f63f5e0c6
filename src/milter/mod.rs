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
//! With `metrics.listen` set, [`Milter::bind`] opens the metrics listener
//! too, [`Milter::run`] serves it on a task of its own, and the sessions,
//! the resolver and reloads count into one [`Metrics`].

mod callbacks;
pub(crate) mod fields;
mod listener;
mod logline;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tollgate_checks::Checker;
use tollgate_dns::{HickoryLookup, ResolverError, ResolverOptions};
use tollgate_greylist::{Clock, Greylist, SystemClock};

use crate::config::{Config, ConfigError, Dns, Listen};
use crate::metrics::Metrics;

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
    /// The metrics listener could not be opened.
    #[error("cannot listen for metrics on {listen}: {source}")]
    MetricsBind {
        /// Where (`metrics.listen`).
        listen: SocketAddr,
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
        metrics: Option<&Metrics>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Shared, ServeError> {
        // Keep the resolver (and its cache, and its observer) when DNS
        // settings did not change.
        let lookup = match reuse {
            Some(old) if old.config.dns == config.dns => old.checker.lookup().clone(),
            _ => {
                let lookup = resolver(&config.dns)?;
                match metrics {
                    Some(metrics) => lookup.with_observer(metrics.dns()),
                    None => lookup,
                }
            }
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
    /// The connection limit (`max_connections` at start).
    max_connections: usize,
    /// What is counted, with metrics on.
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl State {
    /// The configuration snapshot for a new connection.
    pub(crate) fn current(&self) -> Arc<Shared> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn session_opened(self: &Arc<Self>) -> LiveSession {
        let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(metrics) = &self.metrics {
            metrics.connection_opened(live, self.max_connections);
        }
        LiveSession(Arc::clone(self))
    }
}

/// Counts a session as live while it exists.
#[derive(Debug)]
pub(crate) struct LiveSession(Arc<State>);

impl Drop for LiveSession {
    fn drop(&mut self) {
        if let Some(metrics) = &self.0.metrics {
            metrics.connection_closed();
        }
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
    /// The metrics listener, with metrics on.
    metrics_listener: Option<tokio::net::TcpListener>,
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
        // The metrics listener first: when it cannot be had, no socket
        // file is left behind.
        let metrics_listener =
            match config.metrics.listen {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                    |source| ServeError::MetricsBind {
                        listen: addr,
                        source,
                    },
                )?),
                None => None,
            };
        let bound = listener::Bound::bind(&config.listen, config.socket_mode, gid)
            .await
            .map_err(|source| ServeError::Bind {
                listen: config.listen.clone(),
                source,
            })?;
        let metrics = metrics_listener.as_ref().map(|_| Arc::new(Metrics::new()));
        let max_connections = config.max_connections;
        let shared = Shared::build(config, None, metrics.as_deref(), &clock).await?;
        Ok(Milter {
            state: Arc::new(State {
                current: RwLock::new(Arc::new(shared)),
                clock,
                next_id: AtomicU64::new(0),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
                max_connections,
                metrics,
            }),
            bound,
            metrics_listener,
        })
    }

    /// Where the metrics are served (with the real port for `:0`), if on.
    pub fn metrics_listen(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
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
        // Served on a task of its own; it ends when `run` returns.
        let metrics_server = match (self.metrics_listener, &state.metrics) {
            (Some(listener), Some(metrics)) => {
                metrics.set_connection_limit(state.max_connections);
                Some(AbortOnDrop(tokio::spawn(crate::metrics::http::serve(
                    listener,
                    Arc::clone(metrics),
                ))))
            }
            _ => None,
        };
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
        drop(metrics_server);
        result.map_err(ServeError::Io)
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MilterHandle {
    /// Reads the configuration file again (on a blocking thread: parsing
    /// must not stall the sessions) and, if it is valid, serves new
    /// connections with it. On error the old configuration stays.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let result = self.load_and_apply().await;
        if let Some(metrics) = &self.state.metrics {
            metrics.reload(result.is_ok());
        }
        result
    }

    async fn load_and_apply(&self) -> Result<(), ConfigError> {
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
        if old.config.metrics != config.metrics {
            tracing::warn!("metrics.listen changed: restart tollgate to apply");
        }
        let shared = Shared::build(
            config,
            Some(&old),
            self.state.metrics.as_deref(),
            &self.state.clock,
        )
        .await?;
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
