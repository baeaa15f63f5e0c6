//! The milter's listening socket: `inet:` or `unix:`, with TCP_NODELAY on
//! every accepted connection (without it each milter round trip waits for
//! a delayed ACK), accept errors that back off instead of stopping the
//! milter (indymilter ends on the first accept error) and are logged at
//! most once a minute, and a stop switch that closes the socket while live
//! sessions finish.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use indymilter::{EitherListener, EitherStream, Listener};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::Listen;

/// How long to wait after a failed accept (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The accept-failure warning is logged at most this often: at EMFILE it
/// would otherwise come ten times a second.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// A bound milter socket.
#[derive(Debug)]
pub(crate) struct Bound {
    inner: EitherListener<TcpListener, UnixListener>,
    /// The address really bound (the port filled in for `inet:…:0`).
    pub listen: Listen,
    /// A unix socket to remove on exit.
    unix_path: Option<PathBuf>,
}

impl Bound {
    /// Binds `listen`. A stale unix socket is replaced; a unix socket gets
    /// `mode` and, if given, the group `gid` (see [`group_id`]). If that
    /// fails, the new socket file is removed again.
    pub async fn bind(listen: &Listen, mode: u32, gid: Option<u32>) -> io::Result<Bound> {
        match listen {
            Listen::Inet(addr) => {
                let tcp = TcpListener::bind(addr).await?;
                let local = tcp.local_addr()?;
                Ok(Bound {
                    inner: EitherListener::Tcp(tcp),
                    listen: Listen::Inet(local),
                    unix_path: None,
                })
            }
            Listen::Unix(path) => {
                remove_stale_socket(path)?;
                let unix = UnixListener::bind(path)?;
                let owned = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .and_then(|()| match gid {
                        Some(gid) => std::os::unix::fs::chown(path, None, Some(gid)),
                        None => Ok(()),
                    });
                if let Err(e) = owned {
                    drop(unix);
                    let _ = std::fs::remove_file(path);
                    return Err(e);
                }
                Ok(Bound {
                    inner: EitherListener::Unix(unix),
                    listen: listen.clone(),
                    unix_path: Some(path.clone()),
                })
            }
        }
    }

    /// Wraps the socket for indymilter; `stop` closes it.
    pub fn into_listener(self, stop: CancellationToken) -> GuardedListener {
        GuardedListener {
            inner: Some(self.inner),
            unix_path: self.unix_path,
            stopped: Box::pin(stop.cancelled_owned()),
            backoff: None,
            warnings: WarningLimiter::new(ACCEPT_WARNING_INTERVAL),
        }
    }
}

/// The listener indymilter polls.
pub(crate) struct GuardedListener {
    inner: Option<EitherListener<TcpListener, UnixListener>>,
    unix_path: Option<PathBuf>,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    backoff: Option<Pin<Box<Sleep>>>,
    warnings: WarningLimiter,
}

impl GuardedListener {
    fn close(&mut self) {
        self.inner = None;
        if let Some(path) = self.unix_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for GuardedListener {
    fn drop(&mut self) {
        self.close();
    }
}

impl Listener for GuardedListener {
    type Io = EitherStream<TcpStream, UnixStream>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            // Stop accepting: close the socket, and never accept again.
            self.close();
            return Poll::Pending;
        }
        if let Some(backoff) = &mut self.backoff {
            if backoff.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.backoff = None;
        }
        let Some(inner) = &mut self.inner else {
            return Poll::Pending;
        };
        match inner.poll_accept(cx) {
            Poll::Ready(Ok(stream)) => {
                if let EitherStream::Tcp(tcp) = &stream
                    && let Err(e) = tcp.set_nodelay(true)
                {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                Poll::Ready(Ok(stream))
            }
            Poll::Ready(Err(e)) => {
                if let Some(suppressed) = self.warnings.admit(Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        suppressed,
                        "accepting a milter connection failed; retrying every 100ms (logged at most once a minute)"
                    );
                }
                let mut sleep = Box::pin(tokio::time::sleep(ACCEPT_BACKOFF));
                let _ = sleep.as_mut().poll(cx);
                self.backoff = Some(sleep);
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

/// Removes a leftover socket file; refuses to remove anything else.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The id of a group, from /etc/group (or a number given as is).
pub(crate) fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot look up group {group:?}: /etc/group: {e}"))?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| format!("no group {group:?} in /etc/group"))
}

/// Lets a repeated warning through at most once per interval, and counts
/// the ones it held back.
#[derive(Debug)]
struct WarningLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl WarningLimiter {
    fn new(interval: Duration) -> WarningLimiter {
        WarningLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log the warning that happened at `now`: `Some(n)` with
    /// the number held back since the last one logged, or `None`.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_warning_at_emfile_is_logged_once_a_minute_with_the_count_held_back() {
        let mut limiter = WarningLimiter::new(ACCEPT_WARNING_INTERVAL);
        let start = Instant::now();
        // Ten failures a second (the accept backoff) for three minutes.
        let logged: Vec<(u64, Option<u64>)> = (0..1800u64)
            .map(|i| (i, limiter.admit(start + ACCEPT_BACKOFF * i as u32)))
            .filter(|(_, admitted)| admitted.is_some())
            .collect();
        assert_eq!(
            logged,
            vec![(0, Some(0)), (600, Some(599)), (1200, Some(599))]
        );
    }

    #[test]
    fn accept_warning_after_a_quiet_spell_is_logged_at_once() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(limiter.admit(start), Some(0));
        assert_eq!(limiter.admit(start + Duration::from_secs(1)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(59)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(3600)), Some(2));
        assert_eq!(limiter.admit(start + Duration::from_secs(3601)), None);
        // A clock that seems to go back never lets a warning through early.
        assert_eq!(limiter.admit(start), None);
    }
}
