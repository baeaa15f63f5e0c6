//! `tollgate serve`: loads the configuration, sets up logging, binds the
//! socket, and runs the milter until SIGTERM or SIGINT; SIGHUP reloads.

use std::io::IsTerminal;
use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, DEFAULT_PATH, LogFormat};
use crate::milter::Milter;

/// The arguments of `tollgate serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
}

/// Why `tollgate serve` stopped with an error; the exit code goes with it.
#[derive(Debug, thiserror::Error)]
pub enum ServeFailure {
    /// The configuration is bad (exit 78, EX_CONFIG).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Anything else (exit 1).
    #[error(transparent)]
    Serve(#[from] crate::milter::ServeError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

impl ServeFailure {
    /// The process exit code: 78 (EX_CONFIG) when a setting is at fault,
    /// also one found bad only at bind (`socket_group`), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeFailure::Config(_) | ServeFailure::Serve(crate::milter::ServeError::Config(_)) => {
                78
            }
            _ => 1,
        }
    }
}

/// Sets up logging for `config` (stderr, text or JSON lines).
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("tollgate: logging already set up: {e}");
    }
}

/// Runs `tollgate serve`.
pub async fn run(args: &ServeArgs) -> Result<(), ServeFailure> {
    let config = Config::load_off_thread(args.config.clone()).await?;
    init_logging(&config);
    let milter = Milter::bind(config).await?;
    // The handlers are in place before anyone is told the milter runs: a
    // SIGHUP sent right after "tollgate started" used to find none, and
    // its default action ended the process.
    let mut hup = signal(SignalKind::hangup()).map_err(ServeFailure::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeFailure::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeFailure::Signals)?;
    // The one line on stdout: tests and scripts wait for it.
    println!("listening on {}", milter.listen());
    tracing::info!(listen = %milter.listen(), version = env!("CARGO_PKG_VERSION"), "tollgate started");
    if let Some(addr) = milter.metrics_listen() {
        tracing::info!(url = %format!("http://{addr}/metrics"), "serving metrics");
    }
    let handle = milter.handle();
    let reloader = async move {
        while hup.recv().await.is_some() {
            match handle.reload().await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "reload failed; the old configuration stays"),
            }
        }
    };
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping"),
        }
    };
    tokio::select! {
        result = milter.run(shutdown) => result?,
        () = reloader => {}
    }
    tracing::info!("tollgate stopped");
    Ok(())
}
