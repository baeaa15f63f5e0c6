//! `greylist:`: which store, where, and the greylisting times and networks.
//! The store itself is opened by the milter (and `tollgate greylist`), and
//! only when some policy result uses `greylist`.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use tollgate_greylist::{Networks, Settings};

use super::ConfigError;
use super::raw::RawGreylist;
use super::validate::{Span, Validator};

/// The default embedded store file.
pub const DEFAULT_GREYLIST_PATH: &str = "/var/lib/tollgate/greylist.db";
/// The default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Where greylisting keeps its triplets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// An SQLite file on this host (`greylist.path`).
    Embedded(PathBuf),
    /// A Redis server shared by several MX hosts (`greylist.redis`).
    Redis(String),
}

impl StoreKind {
    /// The configuration key that names this store: `greylist.path` or
    /// `greylist.redis`.
    pub fn key(&self) -> &'static str {
        match self {
            StoreKind::Embedded(_) => "greylist.path",
            StoreKind::Redis(_) => "greylist.redis",
        }
    }
}

/// The greylisting configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greylisting {
    /// The store.
    pub store: StoreKind,
    /// Delay, windows, auto-allow and networks.
    pub settings: Settings,
    /// Add `X-Greylist` to a message that was delayed.
    pub header: bool,
}

impl Default for Greylisting {
    fn default() -> Self {
        Greylisting {
            store: StoreKind::Embedded(PathBuf::from(DEFAULT_GREYLIST_PATH)),
            settings: Settings::default(),
            header: true,
        }
    }
}

/// `greylist.delay`: a second (for tests) to a day.
const DELAY: Span = Span {
    min: Duration::from_secs(1),
    max: Duration::from_secs(86_400),
};
/// `greylist.retry_window`: a minute to 30 days.
const RETRY_WINDOW: Span = Span {
    min: Duration::from_secs(60),
    max: Duration::from_secs(30 * 86_400),
};
/// `greylist.expire`: an hour to a year.
const EXPIRE: Span = Span {
    min: Duration::from_secs(3600),
    max: Duration::from_secs(366 * 86_400),
};
const AUTO_ALLOW: RangeInclusive<usize> = 0..=1000;
const NETWORK_V4: RangeInclusive<usize> = 8..=32;
const NETWORK_V6: RangeInclusive<usize> = 16..=128;

impl Validator<'_> {
    pub(super) fn greylist(&self, raw: RawGreylist) -> Result<Greylisting, ConfigError> {
        let defaults = Settings::default();
        let delay = self.duration("greylist.delay", raw.delay.as_ref(), defaults.delay, &DELAY)?;
        let retry_window = self.duration(
            "greylist.retry_window",
            raw.retry_window.as_ref(),
            defaults.retry_window,
            &RETRY_WINDOW,
        )?;
        if retry_window <= delay {
            return Err(self.error(
                "greylist.retry_window",
                "must be longer than greylist.delay (a retry after the delay must still be in the window)",
            ));
        }
        let expire = self.duration(
            "greylist.expire",
            raw.expire.as_ref(),
            defaults.expire,
            &EXPIRE,
        )?;
        let count = |key: &str, v: Option<u32>, d: u32, r: RangeInclusive<usize>| {
            self.count(key, v.map(|v| v as usize), d as usize, r)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let auto_allow = count(
            "greylist.auto_allow",
            raw.auto_allow,
            defaults.auto_allow,
            AUTO_ALLOW,
        )?;
        let v4 = count(
            "greylist.network_v4",
            raw.network_v4.map(u32::from),
            24,
            NETWORK_V4,
        )?;
        let v6 = count(
            "greylist.network_v6",
            raw.network_v6.map(u32::from),
            64,
            NETWORK_V6,
        )?;
        let store = match raw.store.as_deref() {
            None | Some("embedded") => {
                let path = raw
                    .path
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_GREYLIST_PATH.to_owned());
                StoreKind::Embedded(PathBuf::from(path))
            }
            Some("redis") => {
                let url = raw
                    .redis
                    .map(|u| u.trim().to_owned())
                    .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(self.error(
                        "greylist.redis",
                        "expected a URL like redis://127.0.0.1:6379/0 (rediss:// for TLS)",
                    ));
                }
                StoreKind::Redis(url)
            }
            Some(other) => {
                return Err(self.error(
                    "greylist.store",
                    format!("{other:?} is not embedded or redis"),
                ));
            }
        };
        Ok(Greylisting {
            store,
            settings: Settings {
                delay,
                retry_window,
                expire,
                auto_allow,
                networks: Networks {
                    v4: u8::try_from(v4).unwrap_or(32),
                    v6: u8::try_from(v6).unwrap_or(128),
                },
            },
            header: raw.header.unwrap_or(true),
        })
    }
}
