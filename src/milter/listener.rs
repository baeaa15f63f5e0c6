//! The milter's listening socket: `inet:` or `unix:`, with TCP_NODELAY on
//! every accepted connection (without it each milter round trip waits for
//! a delayed ACK), accept errors that back off instead of stopping the
//! milter (indymilter ends on the first accept error), and a stop switch
//! that closes the socket while live sessions finish.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use indymilter::{EitherListener, EitherStream, Listener};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::Listen;

/// How long to wait after a failed accept (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// `mode` and, if given, `group`.
    pub async fn bind(listen: &Listen, mode: u32, group: Option<&str>) -> io::Result<Bound> {
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
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                if let Some(group) = group {
                    let gid = group_id(group)?;
                    std::os::unix::fs::chown(path, None, Some(gid))?;
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
        }
    }
}

/// The listener indymilter polls.
pub(crate) struct GuardedListener {
    inner: Option<EitherListener<TcpListener, UnixListener>>,
    unix_path: Option<PathBuf>,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    backoff: Option<Pin<Box<Sleep>>>,
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
                tracing::warn!(error = %e, "accepting a milter connection failed; retrying");
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
fn group_id(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no group {group:?}")))
}
