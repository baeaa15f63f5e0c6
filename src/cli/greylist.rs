//! `tollgate greylist`: the configured greylisting store from the command
//! line, while the milter runs (the embedded store's file is shared in
//! WAL mode; Redis is shared anyway): list or count entries, allow a
//! network or a triplet by hand, forget one.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use tollgate_greylist::{Clock, Entry, Store, SystemClock, Triplet};

use crate::config::{Config, ConfigError, DEFAULT_PATH};
use crate::milter::open_store;

/// The arguments of `tollgate greylist`.
#[derive(Clone, Debug, clap::Args)]
pub struct GreylistArgs {
    /// The configuration file that names the store.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: GreylistCommand,
}

/// What `tollgate greylist` does.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum GreylistCommand {
    /// List the live entries (networks, then triplets).
    List,
    /// Count the live entries.
    Count,
    /// Allow a network (or an address's network) or a triplet by hand.
    Allow(Target),
    /// Forget a network or a triplet.
    Forget(Target),
}

/// A network, or a triplet (`--ip --sender --recipient`).
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// A network (192.0.2.0/24) or an address (its /24 or /64, as configured).
    #[arg(conflicts_with_all = ["ip", "sender", "recipient"], required_unless_present = "ip")]
    pub network: Option<String>,
    /// The triplet's client address.
    #[arg(long, requires_all = ["sender", "recipient"])]
    pub ip: Option<IpAddr>,
    /// The triplet's envelope sender (empty for the null sender).
    #[arg(long)]
    pub sender: Option<String>,
    /// The triplet's recipient.
    #[arg(long)]
    pub recipient: Option<String>,
}

/// Why `tollgate greylist` failed.
#[derive(Debug, thiserror::Error)]
pub enum GreylistError {
    /// The configuration file is bad (or its store cannot be opened).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command-line value is bad.
    #[error("{0}")]
    Argument(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tollgate_greylist::StoreError),
    /// `forget` found nothing.
    #[error("{0} is not in the store")]
    NotFound(String),
}

/// Runs `tollgate greylist`; what to print.
pub async fn run(args: &GreylistArgs) -> Result<String, GreylistError> {
    let config = Config::load_off_thread(args.config.clone()).await?;
    let greylist = &config.greylist;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(greylist, Arc::clone(&clock))
        .await
        .map_err(|e| ConfigError {
            file: config.path.display().to_string(),
            key: greylist.store.key().to_owned(),
            line: None,
            problem: e.to_string(),
        })?;
    let now = clock.now();
    let store: &dyn Store = store.as_ref();
    match &args.command {
        GreylistCommand::List => Ok(render_list(&store.entries(now).await?, now)),
        GreylistCommand::Count => {
            let c = store.counts(now).await?;
            Ok(format!(
                "triplets: {} pending, {} passed\nnetworks: {} ({} skip greylisting)\n",
                c.pending, c.passed, c.networks, c.allowed_networks
            ))
        }
        GreylistCommand::Allow(target) => match parse(target, &config)? {
            Parsed::Network(net) => {
                store.allow_network(net, now).await?;
                Ok(format!("allowed network {net}\n"))
            }
            Parsed::Triplet(t) => {
                store.allow_triplet(&t, now).await?;
                Ok(format!("allowed triplet {t}\n"))
            }
        },
        GreylistCommand::Forget(target) => match parse(target, &config)? {
            Parsed::Network(net) => {
                if store.forget_network(net).await? {
                    Ok(format!("forgot network {net}\n"))
                } else {
                    Err(GreylistError::NotFound(format!("network {net}")))
                }
            }
            Parsed::Triplet(t) => {
                if store.forget_triplet(&t).await? {
                    Ok(format!("forgot triplet {t}\n"))
                } else {
                    Err(GreylistError::NotFound(format!("triplet {t}")))
                }
            }
        },
    }
}

enum Parsed {
    Network(IpNet),
    Triplet(Triplet),
}

fn parse(target: &Target, config: &Config) -> Result<Parsed, GreylistError> {
    let networks = config.greylist.settings.networks;
    if let Some(ip) = target.ip {
        let sender = target.sender.as_deref().unwrap_or("");
        let recipient = target.recipient.as_deref().unwrap_or("");
        if recipient.trim().is_empty() {
            return Err(GreylistError::Argument("--recipient is empty".to_owned()));
        }
        return Ok(Parsed::Triplet(Triplet::new(
            ip, sender, recipient, networks,
        )));
    }
    let text = target.network.as_deref().unwrap_or("");
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(Parsed::Network(net.trunc()));
    }
    text.parse::<IpAddr>()
        .map(|ip| Parsed::Network(networks.of(ip)))
        .map_err(|_| {
            GreylistError::Argument(format!(
                "{text:?} is not a network like 192.0.2.0/24 or an address"
            ))
        })
}

/// Ages in whole units: `3d`, `5h`, `12m`, `40s`.
fn age(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn render_list(entries: &[Entry], now: u64) -> String {
    let mut out = String::new();
    for e in entries {
        match e {
            Entry::Network(net, n) => {
                let how = if n.manual {
                    "allowed by hand"
                } else {
                    "passed"
                };
                let _ = writeln!(
                    out,
                    "network {net} {how}, {} passes, last {} ago",
                    n.passes,
                    age(now, n.last)
                );
            }
            Entry::Triplet(t, r) if r.passes > 0 => {
                let _ = writeln!(
                    out,
                    "triplet {t} passed {} times, first seen {} ago, last {} ago",
                    r.passes,
                    age(now, r.first),
                    age(now, r.passed)
                );
            }
            Entry::Triplet(t, r) => {
                let _ = writeln!(
                    out,
                    "triplet {t} pending, first seen {} ago",
                    age(now, r.first)
                );
            }
        }
    }
    if out.is_empty() {
        out.push_str("no entries\n");
    }
    out
}
